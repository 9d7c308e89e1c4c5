//! Property tests of the verification core, through its public API only (issue 8).
//!
//! 1. Sign-then-verify accepts: arbitrary flat JSON and form bodies (md5 scheme) and arbitrary
//!    nested JSON (Cube scheme), with arbitrary secrets / key ids / keys, go through the real
//!    decision path (`Config::from_json` -> `check_head` -> `verify_body`) and are accepted.
//!    The expected signature is computed HERE, from the generated parameters (not by parsing the
//!    body), with md-5 / hmac-sha1 directly; the crate's own `sign_md5` / `sign_cube` must agree.
//! 2. Any one-byte change of the body, one-character change of the signature header, or other
//!    secret / key id / key is rejected, unless the change is semantically neutral (see
//!    `mutated_body_*`: decided by an independent strict parser written in this file).
//! 3. Parsers never panic on arbitrary input (body parsers, content types, canonicalisers,
//!    signature headers, the whole head + body decision, the config parser, timestamps).
//! 4. Nesting never recurses without bound: 10,000 and 100,000 levels deep, and arbitrary depth,
//!    are checked on a thread with a small stack (`SMALL_STACK`).
//!
//! Case counts are modest so that `cargo test` stays quick; `PROPTEST_CASES` overrides them
//! (`make fuzz` runs many more in release), scaled down for the expensive properties.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::json;

use lf_webhook_guard::body::{self, Json};
use lf_webhook_guard::canonical::{cube_json, md5_prefix};
use lf_webhook_guard::config::{EmptyValues, Md5Options, NestedValues};
use lf_webhook_guard::scheme::{cube, md5 as md5_scheme};
use lf_webhook_guard::verify::HeaderValue;
use lf_webhook_guard::{
    freshness, sign_cube, sign_md5, Config, HeadVerdict, MediaType, Params, Reason, RequestHead,
    CUBE_ALGO_HEADER, CUBE_SIGNATURE_HEADER, CUBE_TIMESTAMP_HEADER, CUBE_VERSION_HEADER,
    MD5_HEADER,
};

// ------------------------------------------------------------------------------ settings ----

/// Proptest settings: `default` cases, or `PROPTEST_CASES / divisor` when that is set (the
/// expensive properties run fewer cases in `make fuzz`). An explicit `with_cases` would ignore
/// `PROPTEST_CASES`, so every property goes through here.
fn cases(default: u32, divisor: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(default, |n| (n / divisor).max(1));
    ProptestConfig {
        cases,
        // tests/properties.proptest-regressions, replayed before new cases (the default
        // `SourceParallel` looks for a lib.rs beside tests/ and warns).
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    }
}

/// Stack of the threads that parse deeply nested input: unbounded recursion over 10,000 levels
/// needs megabytes even in release, so it would overflow (and abort the test binary) here.
/// The bounded recursion that does exist (serde_json's own limit of 128 levels, the core's
/// limit of 32) fits comfortably, in debug builds too.
const SMALL_STACK: usize = 256 * 1024;

/// The config parser reads `dedup` as a `serde_json::Value`, whose recursion serde_json bounds
/// at 128 levels; in a debug build those 128 frames (with serde_path_to_error's wrappers) take
/// between 256 and 512 KiB. The config is the operator's, not a sender's, input; 1 MiB still
/// overflows long before 10,000 levels of unbounded recursion.
const CONFIG_STACK: usize = 1024 * 1024;

fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    on_stack(SMALL_STACK, f)
}

fn on_stack<T: Send + 'static>(size: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .name(format!("stack-{size}"))
        .stack_size(size)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

// ------------------------------------------------------------------ config and decision ----

const MD5_KEY_ID: &str = "md5-key";
const MD5_PATH: &[u8] = b"/md5/hook";
const CUBE_PATH: &[u8] = b"/cube/hook";
const NOW: u64 = 1_700_000_000_000;

/// A config built from JSON, as the filter gets it: one md5 key, one Cube key, one route each.
fn config(md5_secret: &str, cube_id: &str, cube_key: &str) -> Config {
    let v = json!({
        "keys": [
            {"id": MD5_KEY_ID, "schemes": ["md5"], "secret": md5_secret},
            {"id": cube_id, "schemes": ["cube"], "secret": cube_key}
        ],
        "routes": [
            {"name": "md5", "path_prefix": "/md5/", "scheme": "md5", "keys": [MD5_KEY_ID]},
            {"name": "cube", "path_prefix": "/cube/", "scheme": "cube", "keys": [cube_id]}
        ],
        "max_body_bytes": 8 * 1024 * 1024,
        // The properties below sign numbers, booleans and null too (the `any` rules); the
        // strings-only default is covered by the unit tests.
        "md5": {"value_types": "any"}
    });
    Config::from_json(&serde_json::to_vec(&v).unwrap(), |_| None).unwrap()
}

/// The decision for one request: `Ok(x-lf-verified value)` or the rejection reason.
fn decide(c: &Config, path: &[u8], head: &RequestHead<'_>, body: &[u8]) -> Result<String, Reason> {
    let route = c.route_index(path).unwrap();
    match lf_webhook_guard::verify::check_head(c, route, head).map_err(|r| r.reason)? {
        HeadVerdict::ForwardUnsigned => Ok("none".into()),
        HeadVerdict::NeedBody(p) => lf_webhook_guard::verify::verify_body(c, &p, body, NOW)
            .map(|a| a.header_value())
            .map_err(|r| r.reason),
    }
}

fn md5_head<'a>(content_type: &'a [u8], sig: &'a [u8]) -> RequestHead<'a> {
    RequestHead::from_pairs([
        (":method", &b"POST"[..]),
        ("content-type", content_type),
        (MD5_HEADER, sig),
    ])
}

#[derive(Debug, Clone)]
struct CubeHeaders {
    version: String,
    algo: String,
    timestamp: String,
}

fn cube_head<'a>(h: &'a CubeHeaders, sig: &'a [u8]) -> RequestHead<'a> {
    RequestHead::from_pairs([
        (":method", &b"POST"[..]),
        ("content-type", &b"application/json; charset=utf-8"[..]),
        (CUBE_VERSION_HEADER, h.version.as_bytes()),
        (CUBE_ALGO_HEADER, h.algo.as_bytes()),
        (CUBE_TIMESTAMP_HEADER, h.timestamp.as_bytes()),
        (CUBE_SIGNATURE_HEADER, sig),
    ])
}

// ------------------------------------------------------------ independent signatures ----

/// `x-lf-md5` for a signed text, computed here: base64 of the lowercase hex MD5.
fn md5_header(text: &[u8]) -> String {
    let hex: String = Md5::digest(text)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    STANDARD.encode(hex)
}

/// The md5 signed text of (key, value) pairs: sorted by key (bytes), `k=v` joined by `&`,
/// then `&` and the secret. Values raw (not URL-encoded), empty values kept (`k=`).
fn md5_text(pairs: &[(String, String)], secret: &str) -> String {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::new();
    for (k, v) in sorted {
        let _ = write!(out, "{k}={v}&");
    }
    out.push_str(secret);
    out
}

/// `x-lf-signature` computed here: `{keyId}/base64(HMAC-SHA1(key, text))`.
fn cube_header(key_id: &str, key: &[u8], text: &[u8]) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).unwrap();
    mac.update(text);
    format!("{key_id}/{}", STANDARD.encode(mac.finalize().into_bytes()))
}

// ------------------------------------------------------------------- generated bodies ----

/// A JSON string: its text and how it is written in the body (with a random mix of escapes).
#[derive(Debug, Clone)]
struct JStr {
    text: String,
    json: String,
}

/// Characters that exercise the rules: anything, printable ASCII, and the special ones.
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        4 => proptest::char::range(' ', '~'),
        3 => prop::sample::select(vec![
            '"', '\\', '/', '\n', '\r', '\t', '\u{0}', '\u{1f}', '\u{7f}', '\u{8}', '\u{c}', '&',
            '=', '+', '%', ' ', '#', '{', '[', 'é', '😀', '\u{2028}', '\u{feff}', '\u{ffff}',
        ]),
    ]
}

/// Write one character into a JSON string: raw, `\uXXXX` (lower or upper hex, surrogate pairs
/// beyond the BMP) or a short escape (`\n`, `\/`, ...), as `how` says; `"`, `\` and control
/// characters are always escaped.
fn json_char(c: char, how: u8, out: &mut String) {
    let short = match c {
        '"' => Some("\\\""),
        '\\' => Some("\\\\"),
        '/' => Some("\\/"),
        '\n' => Some("\\n"),
        '\r' => Some("\\r"),
        '\t' => Some("\\t"),
        '\u{8}' => Some("\\b"),
        '\u{c}' => Some("\\f"),
        _ => None,
    };
    let must_escape = c == '"' || c == '\\' || (c as u32) < 0x20;
    match (how % 4, short) {
        (0, _) if !must_escape => out.push(c),
        (0 | 3, Some(s)) => out.push_str(s),
        (h, _) => {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                if h == 2 {
                    let _ = write!(out, "\\u{u:04X}");
                } else {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
        }
    }
}

fn jstr(len: std::ops::Range<usize>) -> impl Strategy<Value = JStr> {
    prop::collection::vec((any_char(), any::<u8>()), len).prop_map(|chars| {
        let mut json = String::from("\"");
        for &(c, how) in &chars {
            json_char(c, how, &mut json);
        }
        json.push('"');
        JStr {
            text: chars.iter().map(|&(c, _)| c).collect(),
            json,
        }
    })
}

/// A JSON number literal (kept as sent by both schemes) that every runtime reads exactly:
/// integers up to 15 digits, fractions, exponents, negative zero. (Larger ones are malformed by
/// design: `number_exact`; the mutation properties reach them.)
fn number() -> impl Strategy<Value = String> {
    "-?(0|[1-9][0-9]{0,6})(\\.[0-9]{1,8})?([eE][+-]?[0-9]{1,2})?"
}

#[derive(Debug, Clone)]
enum Node {
    Str(JStr),
    Num(String),
    Bool(bool),
    Null,
    Arr(Vec<Node>),
    Obj(Vec<(JStr, Node)>),
}

fn leaf() -> impl Strategy<Value = Node> {
    prop_oneof![
        4 => jstr(0..12).prop_map(Node::Str),
        2 => number().prop_map(Node::Num),
        1 => any::<bool>().prop_map(Node::Bool),
        1 => Just(Node::Null),
    ]
}

/// Object members with unique key texts, also under the backends' key folding, and no control
/// characters in keys (both malformed by design).
fn unique(mut members: Vec<(JStr, Node)>) -> Vec<(JStr, Node)> {
    let mut seen = std::collections::HashSet::new();
    members.retain(|(k, _)| {
        !k.text.chars().any(char::is_control) && seen.insert(backend_fold(&k.text))
    });
    members
}

/// A flat object (md5 scheme): non-empty unique keys, scalar values.
fn flat_object() -> impl Strategy<Value = Vec<(JStr, Node)>> {
    prop::collection::vec((jstr(1..8), leaf()), 1..8)
        .prop_map(unique)
        .prop_filter("at least one member", |m| !m.is_empty())
}

/// A nested object (Cube scheme): objects and arrays up to a few levels, any keys (even empty).
fn nested_object() -> impl Strategy<Value = Vec<(JStr, Node)>> {
    let node = leaf().prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Node::Arr),
            prop::collection::vec((jstr(0..6), inner), 0..6).prop_map(|m| Node::Obj(unique(m))),
        ]
    });
    prop::collection::vec((jstr(0..8), node), 0..8).prop_map(unique)
}

/// Random white space between JSON tokens, drawn from a seed.
struct Ws(Vec<u8>, usize);

impl Ws {
    fn next(&mut self) -> &'static str {
        const WS: [&str; 8] = ["", "", "", " ", "\t", "\n", "\r\n", "  "];
        let b = self
            .0
            .get(self.1 % self.0.len().max(1))
            .copied()
            .unwrap_or(0);
        self.1 += 1;
        WS[usize::from(b) % WS.len()]
    }
}

fn render(node: &Node, ws: &mut Ws, out: &mut String) {
    match node {
        Node::Str(s) => out.push_str(&s.json),
        Node::Num(n) => out.push_str(n),
        Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Node::Null => out.push_str("null"),
        Node::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                out.push_str(if i > 0 { "," } else { "" });
                out.push_str(ws.next());
                render(item, ws, out);
                out.push_str(ws.next());
            }
            out.push(']');
        }
        Node::Obj(members) => {
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                out.push_str(if i > 0 { "," } else { "" });
                out.push_str(ws.next());
                out.push_str(&k.json);
                out.push_str(ws.next());
                out.push(':');
                out.push_str(ws.next());
                render(v, ws, out);
                out.push_str(ws.next());
            }
            out.push('}');
        }
    }
}

fn render_body(members: &[(JStr, Node)], ws_seed: Vec<u8>) -> Vec<u8> {
    let mut ws = Ws(ws_seed, 0);
    let mut out = String::from(ws.next());
    render(&Node::Obj(members.to_vec()), &mut ws, &mut out);
    out.push_str(ws.next());
    out.into_bytes()
}

/// The md5 parameters of a flat object, from the generator (not from the body).
fn flat_pairs(members: &[(JStr, Node)]) -> Vec<(String, String)> {
    members
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Node::Str(s) => s.text.clone(),
                Node::Num(n) => n.clone(),
                Node::Bool(b) => b.to_string(),
                Node::Null => String::new(),
                Node::Arr(_) | Node::Obj(_) => unreachable!("flat"),
            };
            (k.text.clone(), v)
        })
        .collect()
}

/// A string in the Cube canonical form: `"`, `\`, `\n`, `\r`, `\t`, `\b`, `\f` short-escaped,
/// other control characters as `\u00xx`, everything else (`/`, DEL, non-ASCII) as UTF-8.
fn cube_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The Cube canonical JSON of a generated document (see `cube_write`).
fn cube_canonical(node: &Node, out: &mut String) {
    fn tree(node: &Node) -> J {
        match node {
            Node::Str(s) => J::Str(s.text.clone()),
            Node::Num(n) => J::Num(n.clone()),
            Node::Bool(b) => J::Bool(*b),
            Node::Null => J::Null,
            Node::Arr(items) => J::Arr(items.iter().map(tree).collect()),
            Node::Obj(members) => J::Obj(
                members
                    .iter()
                    .map(|(k, v)| (k.text.clone(), tree(v)))
                    .collect(),
            ),
        }
    }
    cube_write(&tree(node), out);
}

/// Cube canonical JSON, written independently of the core: compact, keys sorted by bytes at
/// every level, numbers as written, strings re-escaped by `cube_string`.
fn cube_write(v: &J, out: &mut String) {
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Num(n) => out.push_str(n),
        J::Str(s) => cube_string(s, out),
        J::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                out.push_str(if i > 0 { "," } else { "" });
                cube_write(item, out);
            }
            out.push(']');
        }
        J::Obj(members) => {
            let mut sorted: Vec<&(String, J)> = members.iter().collect();
            sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                out.push_str(if i > 0 { "," } else { "" });
                cube_string(k, out);
                out.push(':');
                cube_write(v, out);
            }
            out.push('}');
        }
    }
}

/// A form string: its text and its encoding, a random mix of raw characters, `+` or `%20` for
/// spaces, and `%XX` (upper or lower hex) of the UTF-8 bytes. `& = % +` and `{ [` (a body that
/// starts with them would be JSON) are always encoded.
#[derive(Debug, Clone)]
struct FStr {
    text: String,
    enc: String,
}

fn fstr(len: std::ops::Range<usize>) -> impl Strategy<Value = FStr> {
    prop::collection::vec((any_char(), any::<u8>()), len).prop_map(|chars| {
        let mut enc = String::new();
        for &(c, how) in &chars {
            let pct = |out: &mut String| {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    if how & 4 == 0 {
                        let _ = write!(out, "%{b:02X}");
                    } else {
                        let _ = write!(out, "%{b:02x}");
                    }
                }
            };
            if c == ' ' && how % 2 == 0 {
                enc.push('+');
            } else if "&=%+{[;".contains(c) || c == ' ' || how % 3 == 0 {
                pct(&mut enc);
            } else {
                enc.push(c);
            }
        }
        FStr {
            text: chars.iter().map(|&(c, _)| c).collect(),
            enc,
        }
    })
}

/// A form body: unique non-empty keys, any values; random empty segments (`&&`, leading or
/// trailing `&`), which every parser ignores.
fn form_body() -> impl Strategy<Value = (Vec<(String, String)>, Vec<u8>)> {
    (
        prop::collection::vec((fstr(1..8), fstr(0..12)), 1..8),
        prop::collection::vec(any::<u8>(), 16),
    )
        .prop_map(|(mut pairs, seps)| {
            let mut seen = std::collections::HashSet::new();
            pairs.retain(|(k, v)| {
                !form_key_renamed(&k.text)
                    && !k.text.chars().any(char::is_control)
                    && !k.text.starts_with('\u{feff}')
                    && !v.text.contains('\0')
                    && seen.insert(backend_fold(&k.text))
            });
            let sep = |i: usize| match seps[i % seps.len()] % 6 {
                0 => "&&",
                _ => "&",
            };
            let mut body = String::new();
            if seps[0] % 5 == 0 {
                body.push('&');
            }
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    body.push_str(sep(i));
                }
                let _ = write!(body, "{}={}", k.enc, v.enc);
            }
            if seps[1] % 5 == 0 {
                body.push('&');
            }
            let plain: Vec<(String, String)> =
                pairs.into_iter().map(|(k, v)| (k.text, v.text)).collect();
            (plain, body.into_bytes())
        })
        .prop_filter("at least one pair", |(pairs, _)| !pairs.is_empty())
}

fn secret() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{1,40}",
        prop::collection::vec(any_char(), 1..24).prop_map(|c| c.into_iter().collect()),
    ]
}

fn key_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,64}".prop_filter("not the md5 key's id", |id| id != MD5_KEY_ID)
}

fn cube_headers() -> impl Strategy<Value = CubeHeaders> {
    (
        "[!-9;-~]{1,8}",
        prop::sample::select(vec!["HMAC-SHA1", "hmac-sha1", "Hmac-Sha1"]),
        "[0-9]{1,18}",
    )
        .prop_map(|(version, algo, timestamp)| CubeHeaders {
            version,
            algo: algo.to_string(),
            timestamp,
        })
}

fn json_content_type() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=\"UTF-8\"",
    ])
}

fn form_content_type() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=UTF-8",
    ])
}

// --------------------------------------------- independent strict parsers (oracle) ----

/// A key as the most lenient backend parser reads it (docs/integrity.md), written out here
/// independently of the core: ASCII case (Go's struct fields), `ſ`/`K` (Go's Unicode folds),
/// PHP's `.`, space and `[` -> `_` and dropped leading spaces.
fn backend_fold(key: &str) -> String {
    let mut out = String::new();
    for c in key.trim_start_matches(' ').chars() {
        out.push(match c {
            '.' | ' ' | '[' => '_',
            '\u{17f}' => 's',
            '\u{212a}' => 'k',
            'A'..='Z' => c.to_ascii_lowercase(),
            other => other,
        });
    }
    out
}

/// Keys that some backend reads as one, or with a control character: ambiguous.
fn keys_ambiguous<'a>(keys: impl Iterator<Item = &'a str>) -> bool {
    let mut folded = Vec::new();
    for k in keys {
        if k.chars().any(char::is_control) {
            return true;
        }
        folded.push(backend_fold(k));
    }
    folded.sort();
    folded.windows(2).any(|w| w[0] == w[1])
}

/// A form key that PHP renames or nests (`.`, space, `[`, `]`).
fn form_key_renamed(key: &str) -> bool {
    key.contains(['.', ' ', '[', ']'])
}

/// A number literal every runtime reads as written: an integer up to 2^53 - 1, or a finite,
/// non-tiny decimal of at most 15 significant digits.
fn number_exact(lit: &str) -> bool {
    let unsigned = lit.trim_start_matches('-');
    if !unsigned.contains(['.', 'e', 'E']) {
        return unsigned.parse::<u64>().is_ok_and(|n| n < (1u64 << 53));
    }
    let mantissa = unsigned.split(['e', 'E']).next().unwrap_or("");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    let v: f64 = lit.parse().unwrap_or(f64::INFINITY);
    significant <= 15 && v.is_finite() && (v == 0.0 || v.abs() >= 1e-300)
}

/// An independent, strict parse of a JSON body, by the rules the README documents (RFC 8259
/// syntax; strings decoded, lone surrogates and raw control characters invalid; numbers kept
/// as written; duplicate keys at any level and nesting deeper than 32 levels malformed).
/// It decides, for a mutated body, what the core must do with it.
#[derive(Debug, Clone, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

/// The core's documented limit (`body::MAX_NESTED_DEPTH`), written out independently.
const MAX_DEPTH: usize = 32;

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.i += usize::from(hit);
        hit
    }
    fn lit(&mut self, word: &[u8], v: J) -> Option<J> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Some(v)
        } else {
            None
        }
    }
    /// A value at `depth` (the top-level object is 0), with the white space around it.
    fn value(&mut self, depth: usize) -> Option<J> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        let v = match self.peek()? {
            b'{' => {
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if !self.eat(b'}') {
                    loop {
                        self.ws();
                        let k = self.string()?;
                        self.ws();
                        if !self.eat(b':') {
                            return None;
                        }
                        members.push((k, self.value(depth + 1)?));
                        if self.eat(b'}') {
                            break;
                        }
                        if !self.eat(b',') {
                            return None;
                        }
                    }
                }
                let mut keys: Vec<&String> = members.iter().map(|(k, _)| k).collect();
                keys.sort();
                if keys.windows(2).any(|w| w[0] == w[1]) {
                    return None;
                }
                if keys_ambiguous(members.iter().map(|(k, _)| k.as_str())) {
                    return None;
                }
                J::Obj(members)
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if !self.eat(b']') {
                    loop {
                        items.push(self.value(depth + 1)?);
                        if self.eat(b']') {
                            break;
                        }
                        if !self.eat(b',') {
                            return None;
                        }
                    }
                }
                J::Arr(items)
            }
            b'"' => J::Str(self.string()?),
            b't' => self.lit(b"true", J::Bool(true))?,
            b'f' => self.lit(b"false", J::Bool(false))?,
            b'n' => self.lit(b"null", J::Null)?,
            b'-' | b'0'..=b'9' => J::Num(self.number().filter(|n| number_exact(n))?),
            _ => return None,
        };
        self.ws();
        Some(v)
    }
    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }
    fn number(&mut self) -> Option<String> {
        let start = self.i;
        self.eat(b'-');
        if !self.eat(b'0') && (!matches!(self.peek(), Some(b'1'..=b'9')) || self.digits() == 0) {
            return None;
        }
        if self.eat(b'.') && self.digits() == 0 {
            return None;
        }
        if self.eat(b'e') || self.eat(b'E') {
            let _ = self.eat(b'+') || self.eat(b'-');
            if self.digits() == 0 {
                return None;
            }
        }
        Some(String::from_utf8(self.b[start..self.i].to_vec()).unwrap())
    }
    fn hex4(&mut self) -> Option<u32> {
        let h = std::str::from_utf8(self.b.get(self.i..self.i + 4)?).ok()?;
        if !h.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        self.i += 4;
        u32::from_str_radix(h, 16).ok()
    }
    fn string(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let mut out = Vec::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
                0x00..=0x1f => return None,
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = match hi {
                                0xD800..=0xDBFF => {
                                    if !(self.eat(b'\\') && self.eat(b'u')) {
                                        return None;
                                    }
                                    let lo = self.hex4()?;
                                    if !(0xDC00..=0xDFFF).contains(&lo) {
                                        return None;
                                    }
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                }
                                0xDC00..=0xDFFF => return None,
                                c => c,
                            };
                            char::from_u32(code)?
                        }
                        _ => return None,
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c => out.push(c),
            }
        }
    }
}

/// A whole body: UTF-8, one object, nothing but white space around it.
fn parse_strict(body: &[u8]) -> Option<J> {
    std::str::from_utf8(body).ok()?;
    let mut p = Parser { b: body, i: 0 };
    p.ws();
    if p.peek() != Some(b'{') {
        return None;
    }
    let v = p.value(0)?;
    (p.i == body.len()).then_some(v)
}

/// md5 parameters of a JSON body by the documented rules (nested values rejected, the
/// default), or `None` when the body is malformed.
fn oracle_md5_json(body: &[u8]) -> Option<Vec<(String, String)>> {
    let J::Obj(members) = parse_strict(body)? else {
        return None;
    };
    if members.is_empty() {
        return None;
    }
    members
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                J::Str(s) | J::Num(s) => s,
                J::Bool(b) => b.to_string(),
                J::Null => String::new(),
                J::Arr(_) | J::Obj(_) => return None,
            };
            (!k.is_empty()).then_some((k, v))
        })
        .collect()
}

/// Cube canonical JSON of a body, or `None` when the body is malformed.
fn oracle_cube(body: &[u8]) -> Option<String> {
    let mut out = String::new();
    cube_write(&parse_strict(body)?, &mut out);
    Some(out)
}

/// What an independent strict form parse makes of a body.
#[derive(Debug, PartialEq)]
enum FormOracle {
    Pairs(Vec<(String, String)>),
    /// Starts (after white space) with `{` or `[`: JSON declared as form.
    LooksJson,
    Malformed,
}

/// Form rules as documented: UTF-8; split on `&`, empty segments ignored; every pair has `=`
/// (split at the first); `+` is a space; every `%` starts a valid `%XX`; decoded text UTF-8;
/// no raw `;` (a pair separator for some parsers: ambiguous); keys non-empty and unique; at
/// least one pair.
fn oracle_form(body: &[u8]) -> FormOracle {
    // A body that is both JSON-looking and not UTF-8 is rejected either way; the core names
    // the content-type mismatch first (found by `make fuzz`: `[\xa1=&`), so does the oracle.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return FormOracle::Malformed,
        Some(b'{' | b'[') => return FormOracle::LooksJson,
        Some(_) => {}
    }
    let bom = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .is_some_and(|i| body[i..].starts_with(b"\xEF\xBB\xBF"));
    if std::str::from_utf8(body).is_err() || body.contains(&b';') || bom {
        return FormOracle::Malformed;
    }
    fn decode(part: &[u8]) -> Option<String> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < part.len() {
            match part[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let h = std::str::from_utf8(part.get(i + 1..i + 3)?).ok()?;
                    if !h.bytes().all(|c| c.is_ascii_hexdigit()) {
                        return None;
                    }
                    out.push(u8::from_str_radix(h, 16).ok()?);
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).ok()
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for segment in body.split(|&b| b == b'&').filter(|s| !s.is_empty()) {
        let Some(eq) = segment.iter().position(|&b| b == b'=') else {
            return FormOracle::Malformed;
        };
        let (Some(k), Some(v)) = (decode(&segment[..eq]), decode(&segment[eq + 1..])) else {
            return FormOracle::Malformed;
        };
        if k.is_empty() || pairs.iter().any(|(other, _)| *other == k) {
            return FormOracle::Malformed;
        }
        if form_key_renamed(&k) || v.contains('\0') {
            return FormOracle::Malformed;
        }
        pairs.push((k, v));
    }
    if pairs.is_empty() || keys_ambiguous(pairs.iter().map(|(k, _)| k.as_str())) {
        return FormOracle::Malformed;
    }
    FormOracle::Pairs(pairs)
}

/// The options of `config()`: every JSON value type (the `any` rules).
fn c_any_types() -> Md5Options {
    Md5Options {
        value_types: lf_webhook_guard::config::ValueTypes::Any,
        ..Md5Options::default()
    }
}

/// md5 sign-then-verify: the crate's signer agrees with the signature built here from `pairs`,
/// the filter accepts it, and a signature made with another secret (a different string: the
/// signed texts then differ) is rejected.
fn md5_round_trip(
    media: MediaType,
    ct: &str,
    body: &[u8],
    pairs: &[(String, String)],
    secret: &str,
    other: &str,
) -> Result<(), TestCaseError> {
    let sig = md5_header(md5_text(pairs, secret).as_bytes());
    prop_assert_eq!(
        &sign_md5(media, body, &c_any_types(), secret.as_bytes()).unwrap(),
        &sig
    );
    let c = config(secret, "cube-key", "k");
    prop_assert_eq!(
        decide(&c, MD5_PATH, &md5_head(ct.as_bytes(), sig.as_bytes()), body),
        Ok(format!("md5; key={MD5_KEY_ID}"))
    );
    if other != secret {
        let forged = md5_header(md5_text(pairs, other).as_bytes());
        prop_assert_eq!(
            decide(
                &c,
                MD5_PATH,
                &md5_head(ct.as_bytes(), forged.as_bytes()),
                body
            ),
            Err(Reason::InvalidSignature)
        );
    }
    Ok(())
}

/// Bytes a mutation writes: anything, biased to those that change JSON or form structure.
fn mutation_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        1 => any::<u8>(),
        2 => prop::sample::select(b" \t\n\r{}[]\",:;\\/0123456789abcdefABCDEFeEuntl+-.%&=".to_vec()),
    ]
}

/// Apply a one-byte change; `None` when the byte is already there (no change).
fn mutate(body: &[u8], at: Index, byte: u8) -> Option<Vec<u8>> {
    let i = at.index(body.len());
    (body[i] != byte).then(|| {
        let mut m = body.to_vec();
        m[i] = byte;
        m
    })
}

/// Replace one character of a header value by another (base64 alphabet, `/`, `=`, white space
/// and bytes outside ASCII); `None` when it is the same character.
fn mutate_header(header: &str, at: Index, c: char) -> Option<Vec<u8>> {
    let mut chars: Vec<char> = header.chars().collect();
    let i = at.index(chars.len());
    (chars[i] != c).then(|| {
        chars[i] = c;
        chars.into_iter().collect::<String>().into_bytes()
    })
}

fn header_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_. \t"
                .chars()
                .collect::<Vec<_>>()
        ),
        1 => any::<char>(),
    ]
}

// ------------------------------------------------- 1 + 2: sign, verify, and tamper ----

proptest! {
    #![proptest_config(cases(96, 1))]

    /// md5, flat JSON: signed (independently) with an arbitrary secret, it is accepted; the
    /// crate's signer agrees; another secret is rejected.
    #[test]
    fn md5_json_sign_then_verify(
        members in flat_object(),
        ws in prop::collection::vec(any::<u8>(), 1..32),
        secret in secret(),
        other in secret(),
        ct in json_content_type(),
    ) {
        let body = render_body(&members, ws);
        md5_round_trip(MediaType::Json, ct, &body, &flat_pairs(&members), &secret, &other)?;
    }

    /// md5, form bodies with a random mix of encodings.
    #[test]
    fn md5_form_sign_then_verify(
        (pairs, body) in form_body(),
        secret in secret(),
        other in secret(),
        ct in form_content_type(),
    ) {
        md5_round_trip(MediaType::Form, ct, &body, &pairs, &secret, &other)?;
    }

    /// Cube, nested JSON: arbitrary key id and key; the signed text is built here from the
    /// generated document. Another key, or another key id, is rejected.
    #[test]
    fn cube_sign_then_verify(
        members in nested_object(),
        ws in prop::collection::vec(any::<u8>(), 1..32),
        id in key_id(),
        key in secret(),
        other_key in secret(),
        other_id in key_id(),
        h in cube_headers(),
    ) {
        let body = render_body(&members, ws);
        let mut text = format!("{}:{}:{}", h.version, h.algo, h.timestamp);
        cube_canonical(&Node::Obj(members.clone()), &mut text);
        let sig = cube_header(&id, key.as_bytes(), text.as_bytes());
        prop_assert_eq!(
            &sign_cube(&body, &h.version, &h.algo, &h.timestamp, &id, key.as_bytes()).unwrap(),
            &sig
        );
        let c = config("md5-secret", &id, &key);
        prop_assert_eq!(
            decide(&c, CUBE_PATH, &cube_head(&h, sig.as_bytes()), &body),
            Ok(format!("cube; key={id}"))
        );
        // HMAC pads keys with zero bytes, so `k` and `k\0` are the same HMAC key: excluded.
        if other_key.trim_end_matches('\0') != key.trim_end_matches('\0') {
            let forged = cube_header(&id, other_key.as_bytes(), text.as_bytes());
            prop_assert_eq!(
                decide(&c, CUBE_PATH, &cube_head(&h, forged.as_bytes()), &body),
                Err(Reason::InvalidSignature)
            );
        }
        if other_id != id {
            let forged = cube_header(&other_id, key.as_bytes(), text.as_bytes());
            prop_assert_eq!(
                decide(&c, CUBE_PATH, &cube_head(&h, forged.as_bytes()), &body),
                Err(Reason::InvalidSignature)
            );
        }
    }
}

proptest! {
    #![proptest_config(cases(128, 1))]

    /// One byte of a signed flat JSON body changed (md5 scheme). Some changes are neutral:
    /// white space between tokens, an escape's hex digit case (`\u00e9` / `\u00E9`), an escape
    /// that still spells the same character. The property is therefore exact, against the
    /// independent strict parser: the mutated body is accepted IF AND ONLY IF its parameters
    /// give the same signed text; otherwise it is `malformed_body` when the parser says it is
    /// malformed, and `invalid_signature` when it parses to other parameters.
    #[test]
    fn mutated_body_md5_json(
        members in flat_object(),
        ws in prop::collection::vec(any::<u8>(), 1..32),
        secret in secret(),
        at in any::<Index>(),
        byte in mutation_byte(),
    ) {
        let body = render_body(&members, ws);
        let text = md5_text(&flat_pairs(&members), &secret);
        let sig = md5_header(text.as_bytes());
        let Some(mutated) = mutate(&body, at, byte) else { return Ok(()) };
        let c = config(&secret, "cube-key", "k");
        let got = decide(&c, MD5_PATH, &md5_head(b"application/json", sig.as_bytes()), &mutated);
        match oracle_md5_json(&mutated) {
            None => prop_assert_eq!(got, Err(Reason::MalformedBody)),
            Some(pairs) if md5_text(&pairs, &secret) == text => prop_assert!(got.is_ok()),
            Some(_) => prop_assert_eq!(got, Err(Reason::InvalidSignature)),
        }
    }

    /// One byte of a signed form body changed. Neutral changes exist here too (`+` <-> `%20`
    /// cannot be made by ONE byte, but `%2b` <-> `%2B`, `&` added at an end, or `%41` -> `A`
    /// style coincidences can); the same exact property as for JSON, against `oracle_form`.
    #[test]
    fn mutated_body_md5_form(
        (pairs, body) in form_body(),
        secret in secret(),
        at in any::<Index>(),
        byte in mutation_byte(),
    ) {
        let text = md5_text(&pairs, &secret);
        let sig = md5_header(text.as_bytes());
        let Some(mutated) = mutate(&body, at, byte) else { return Ok(()) };
        let c = config(&secret, "cube-key", "k");
        let ct = b"application/x-www-form-urlencoded";
        let got = decide(&c, MD5_PATH, &md5_head(ct, sig.as_bytes()), &mutated);
        match oracle_form(&mutated) {
            FormOracle::Malformed => prop_assert_eq!(got, Err(Reason::MalformedBody)),
            FormOracle::LooksJson => prop_assert_eq!(got, Err(Reason::UnsupportedMediaType)),
            FormOracle::Pairs(p) if md5_text(&p, &secret) == text => prop_assert!(got.is_ok()),
            FormOracle::Pairs(_) => prop_assert_eq!(got, Err(Reason::InvalidSignature)),
        }
    }

    /// One byte of a signed Cube body changed: accepted if and only if the canonical JSON is
    /// unchanged (white space, escape spelling); else malformed or invalid, as for md5.
    #[test]
    fn mutated_body_cube(
        members in nested_object(),
        ws in prop::collection::vec(any::<u8>(), 1..32),
        key in secret(),
        h in cube_headers(),
        at in any::<Index>(),
        byte in mutation_byte(),
    ) {
        let body = render_body(&members, ws);
        let mut canonical = String::new();
        cube_canonical(&Node::Obj(members.clone()), &mut canonical);
        let prefix = format!("{}:{}:{}", h.version, h.algo, h.timestamp);
        let sig = cube_header("kid", key.as_bytes(), format!("{prefix}{canonical}").as_bytes());
        let Some(mutated) = mutate(&body, at, byte) else { return Ok(()) };
        let c = config("md5-secret", "kid", &key);
        let got = decide(&c, CUBE_PATH, &cube_head(&h, sig.as_bytes()), &mutated);
        match oracle_cube(&mutated) {
            None => prop_assert_eq!(got, Err(Reason::MalformedBody)),
            Some(m) if m == canonical => prop_assert!(got.is_ok()),
            Some(_) => prop_assert_eq!(got, Err(Reason::InvalidSignature)),
        }
    }

    /// One character of a valid `x-lf-md5` or `x-lf-signature` changed: always rejected
    /// (base64 is decoded strictly, so no other spelling of the same bytes exists; surrounding
    /// white space is trimmed, which shortens the value).
    #[test]
    fn mutated_signature_header(
        members in flat_object(),
        secret in secret(),
        h in cube_headers(),
        at in any::<Index>(),
        c in header_char(),
    ) {
        let body = render_body(&members, vec![0]);
        let cfg = config(&secret, "kid", &secret);
        let sig = md5_header(md5_text(&flat_pairs(&members), &secret).as_bytes());
        if let Some(bad) = mutate_header(&sig, at, c) {
            prop_assert_eq!(
                decide(&cfg, MD5_PATH, &md5_head(b"application/json", &bad), &body),
                Err(Reason::InvalidSignature)
            );
        }
        let mut text = format!("{}:{}:{}", h.version, h.algo, h.timestamp);
        cube_canonical(&Node::Obj(members.clone()), &mut text);
        let sig = cube_header("kid", secret.as_bytes(), text.as_bytes());
        prop_assert!(decide(&cfg, CUBE_PATH, &cube_head(&h, sig.as_bytes()), &body).is_ok());
        if let Some(bad) = mutate_header(&sig, at, c) {
            prop_assert_eq!(
                decide(&cfg, CUBE_PATH, &cube_head(&h, &bad), &body),
                Err(Reason::InvalidSignature)
            );
        }
    }

    /// One character of the configured secret (md5) or key (Cube) changed: rejected.
    #[test]
    fn mutated_secret(
        members in flat_object(),
        secret in secret(),
        h in cube_headers(),
        at in any::<Index>(),
        c in any_char(),
    ) {
        let body = render_body(&members, vec![0]);
        let Some(other) = mutate_header(&secret, at, c) else { return Ok(()) };
        let other = String::from_utf8(other).unwrap();
        let sig = md5_header(md5_text(&flat_pairs(&members), &secret).as_bytes());
        let cfg = config(&other, "kid", &other);
        prop_assert_eq!(
            decide(&cfg, MD5_PATH, &md5_head(b"application/json", sig.as_bytes()), &body),
            Err(Reason::InvalidSignature)
        );
        let mut text = format!("{}:{}:{}", h.version, h.algo, h.timestamp);
        cube_canonical(&Node::Obj(members.clone()), &mut text);
        let sig = cube_header("kid", secret.as_bytes(), text.as_bytes());
        // `k` and `k\0` are the same HMAC key (zero padding): a NUL at the end is neutral.
        if other.trim_end_matches('\0') != secret.trim_end_matches('\0') {
            prop_assert_eq!(
                decide(&cfg, CUBE_PATH, &cube_head(&h, sig.as_bytes()), &body),
                Err(Reason::InvalidSignature)
            );
        }
    }
}

/// The three outcomes the mutation properties distinguish, on fixed examples, so that the
/// "accepted only if neutral" side is known to be reachable.
#[test]
fn mutation_outcomes_by_example() {
    let secret = "s3cret";
    let c = config(secret, "kid", secret);
    let body = br#"{"a": "\u00e9x", "b": 12}"#;
    let sig = md5_header(
        md5_text(
            &[("a".into(), "éx".into()), ("b".into(), "12".into())],
            secret,
        )
        .as_bytes(),
    );
    let head = md5_head(b"application/json", sig.as_bytes());
    let run = |m: &[u8]| decide(&c, MD5_PATH, &head, m);
    assert!(run(body).is_ok());
    assert!(run(br#"{"a":	"\u00e9x", "b": 12}"#).is_ok(), "white space");
    assert!(
        run(br#"{"a": "\u00E9x", "b": 12}"#).is_ok(),
        "hex digit case"
    );
    assert!(run(br#"{"a": "\u00e9x", "b": 13}"#) == Err(Reason::InvalidSignature));
    assert!(run(br#"{"a": "\u00e9x", "b": 1x}"#) == Err(Reason::MalformedBody));
    assert!(oracle_md5_json(br#"{"a": "\u00E9x", "b": 12}"#).is_some());

    let form = b"a=%C3%A9x&b=1+2";
    let sig = md5_header(
        md5_text(
            &[("a".into(), "éx".into()), ("b".into(), "1 2".into())],
            secret,
        )
        .as_bytes(),
    );
    let head = md5_head(b"application/x-www-form-urlencoded", sig.as_bytes());
    let run = |m: &[u8]| decide(&c, MD5_PATH, &head, m);
    assert!(run(form).is_ok());
    assert!(run(b"a=%c3%A9x&b=1+2").is_ok(), "hex digit case");
    assert!(
        run(b"a=%C3%A9x&&=1+2") == Err(Reason::MalformedBody),
        "empty key"
    );
    assert!(run(b"a=%C3%A9x&b=1+3") == Err(Reason::InvalidSignature));
}

// --------------------------------------------------------- 3: no panic on any input ----

/// Bytes that look like JSON or form text more often than uniform bytes do, so that the
/// parsers get past their first byte.
fn json_ish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..64),
        3 => prop::collection::vec(
            prop_oneof![
                3 => prop::sample::select(
                    b"{}[]\",:\\/ \t\n0123456789.eE+-truefalsnu\\u00e9dD8&=%+aAbB".to_vec()
                ),
                1 => any::<u8>(),
            ],
            0..64,
        ),
        2 => (nested_object(), prop::collection::vec(any::<u8>(), 1..8), any::<Index>(), mutation_byte())
            .prop_map(|(m, ws, at, b)| {
                let body = render_body(&m, ws);
                mutate(&body, at, b).unwrap_or(body)
            }),
        1 => form_body().prop_map(|(_, b)| b),
    ]
}

fn content_type() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..40),
        3 => (
            prop::sample::select(vec![
                "application/json", "APPLICATION/X-WWW-FORM-URLENCODED", "text/plain", "", " ",
                "application/json ", "multipart/form-data",
            ]),
            prop::collection::vec(
                prop::sample::select(vec![
                    ";", "; charset=utf-8", ";charset=\"UTF-8\"", "; charset=", "; charset=\"",
                    "; charset=latin1", "; boundary=x", ";;", "=", "\"", "; charset=\"utf-8",
                ]),
                0..3,
            ),
        )
            .prop_map(|(e, ps)| format!("{e}{}", ps.concat()).into_bytes()),
    ]
}

/// A header as the filter may see it: absent, once (arbitrary or plausible bytes), repeated.
fn header(plausible: &'static [&'static str]) -> impl Strategy<Value = (u8, Vec<u8>)> {
    (
        0u8..4,
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..60),
            prop::sample::select(plausible.to_vec()).prop_map(|s| s.as_bytes().to_vec()),
        ],
    )
}

/// A rich valid configuration: every field of the schema is used somewhere.
fn full_config() -> serde_json::Value {
    json!({
        "keys": [
            {"id": "old", "secret": "first-secret"},
            {"id": "p1", "secret": "partner-one", "partners": ["P1"], "schemes": ["md5"]},
            {"id": "cube-key", "secret_env": "LF_SECRET", "schemes": ["cube", "md5"]},
            {"id_env": "LF_ID", "secret": "x"}
        ],
        "routes": [
            {"name": "lf", "path_prefix": "/linksfield/", "keys": ["old", "p1"], "methods": ["POST", "PUT"]},
            {"name": "cube", "path_exact": "/cube", "scheme": "cube", "keys": ["cube-key"],
             "freshness": {"max_age_seconds": 600, "max_future_skew_seconds": 60}},
            {"name": "auto", "path_prefix": "/auto/", "scheme": "auto", "allow_unsigned": true,
             "partner_field": "partner_code", "mode": "shadow", "dedup": false,
             "freshness": {"max_age_seconds": 86400, "body_field": "received_at",
                           "body_field_utc_offset": "+08:00"}},
            {"path_prefix": "/d/", "dedup": {"window_seconds": 60, "max_entries": 100}}
        ],
        "max_body_bytes": 4096,
        "md5": {"empty_values": "skip", "nested_values": "raw"},
        "mode": "enforce",
        "dedup": {"window_seconds": 30},
        "log_level": "debug",
        "hold_headers": true,
        "hold_timeout_ms": 2000
    })
}

fn env(name: &str) -> Option<String> {
    match name {
        "LF_SECRET" => Some("s3cr3t".into()),
        "LF_ID" => Some("from-env".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// Arbitrary JSON values, with the schema's own words and edge numbers among the leaves.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        prop::sample::select(vec![
            0u64,
            1,
            59,
            60,
            600_000,
            600_001,
            604_800,
            604_801,
            1_000_000,
            1_000_001,
            8_388_608,
            8_388_609,
            u64::from(u32::MAX) + 1,
            u64::MAX
        ])
        .prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(serde_json::Value::String),
        prop::sample::select(vec![
            "",
            "md5",
            "cube",
            "auto",
            "shadow",
            "enforce",
            "skip",
            "keep",
            "raw",
            "reject",
            "trace",
            "debug",
            "off",
            "POST",
            "post",
            "/",
            "/a",
            "a",
            "x y",
            "LF_SECRET",
            "EMPTY",
            "NOPE",
            "+08:00",
            "-99:99",
            "+14:59",
            "Z",
            "+2147483647:00",
            "old",
            "cube-key",
            "partner_code",
            "received_at",
            "window_seconds",
        ])
        .prop_map(|s| serde_json::Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::vec((field_name(), inner), 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "keys",
            "routes",
            "id",
            "id_env",
            "secret",
            "secret_env",
            "schemes",
            "partners",
            "name",
            "path_exact",
            "path_prefix",
            "methods",
            "scheme",
            "allow_unsigned",
            "partner_field",
            "freshness",
            "max_age_seconds",
            "max_future_skew_seconds",
            "body_field",
            "body_field_utc_offset",
            "mode",
            "dedup",
            "window_seconds",
            "max_entries",
            "max_body_bytes",
            "md5",
            "empty_values",
            "nested_values",
            "log_level",
            "hold_headers",
            "hold_timeout_ms",
        ])
        .prop_map(String::from),
        ".{0,8}",
    ]
}

/// Every node of a JSON value, as a path of object keys / array indices.
fn paths(
    v: &serde_json::Value,
    at: &mut Vec<serde_json::Value>,
    out: &mut Vec<Vec<serde_json::Value>>,
) {
    out.push(at.clone());
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                at.push(json!(k));
                paths(child, at, out);
                at.pop();
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                at.push(json!(i));
                paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'v>(
    v: &'v mut serde_json::Value,
    path: &[serde_json::Value],
) -> &'v mut serde_json::Value {
    path.iter().fold(v, |v, step| match step {
        serde_json::Value::String(k) => v.get_mut(k.as_str()).unwrap(),
        n => v.get_mut(n.as_u64().unwrap() as usize).unwrap(),
    })
}

/// A valid config with one structural change: a node replaced by an arbitrary value, removed,
/// given an extra (known or unknown) field, or an array element duplicated.
fn mutated_config() -> impl Strategy<Value = serde_json::Value> {
    (any::<Index>(), 0u8..4, json_value(), field_name()).prop_map(|(at, op, value, name)| {
        let mut config = full_config();
        let mut all = Vec::new();
        paths(&config, &mut Vec::new(), &mut all);
        let path = at.get(&all).clone();
        match (op, path.split_last()) {
            (1, Some((last, parent))) => match node_mut(&mut config, parent) {
                serde_json::Value::Object(m) => {
                    m.remove(last.as_str().unwrap());
                }
                serde_json::Value::Array(items) => {
                    items.remove(last.as_u64().unwrap() as usize);
                }
                _ => {}
            },
            (2, _) => {
                if let serde_json::Value::Object(m) = node_mut(&mut config, &path) {
                    m.insert(name, value);
                }
            }
            (3, _) => {
                if let serde_json::Value::Array(items) = node_mut(&mut config, &path) {
                    if let Some(first) = items.first().cloned() {
                        items.push(first);
                    }
                }
            }
            _ => *node_mut(&mut config, &path) = value,
        }
        config
    })
}

/// Everything the filter does with a request, on arbitrary input: must return, never panic.
fn run_everything(c: &Config, route: usize, head: &RequestHead<'_>, body: &[u8], now: u64) {
    if let Ok(HeadVerdict::NeedBody(p)) = lf_webhook_guard::verify::check_head(c, route, head) {
        let _ = lf_webhook_guard::verify::verified_at_head(c, &p);
        let _ = p.partner_hint(c, body);
        let _ = p.dedup_identity("route", body);
        if let Ok(a) = lf_webhook_guard::verify::verify_body(c, &p, body, now) {
            let _ = a.header_value();
        }
    }
}

proptest! {
    #![proptest_config(cases(256, 1))]

    /// Body parsers, under every media type and md5 option, and both canonicalisers.
    #[test]
    fn body_parsers_never_panic(body in json_ish(), ct in content_type()) {
        let _ = body::media_type(&ct);
        let _ = body::sniff(&body);
        for media in [MediaType::Json, MediaType::Form] {
            for empty_values in [EmptyValues::Keep, EmptyValues::Skip] {
                for nested_values in [NestedValues::Reject, NestedValues::Raw] {
                    let opts = Md5Options { empty_values, nested_values, value_types: lf_webhook_guard::config::ValueTypes::Any };
                    match Params::parse(media, &body, &opts) {
                        Ok(p) => {
                            let mut n = 0;
                            md5_prefix(&p, empty_values, |b| n += b.len());
                            let _ = p.signed(empty_values).count();
                            let _ = p.get("partner_code");
                        }
                        Err(r) => prop_assert!(matches!(
                            r.reason,
                            Reason::MalformedBody | Reason::UnsupportedMediaType
                        )),
                    }
                    let _ = sign_md5(media, &body, &opts, b"k");
                }
            }
        }
        match Json::parse(&body) {
            Ok(j) => {
                let mut n = 0;
                cube_json(&j, &mut |b: &[u8]| n += b.len());
                let _ = j.top_level_str("partner_code");
            }
            Err(r) => prop_assert_eq!(r.reason, Reason::MalformedBody),
        }
        let _ = sign_cube(&body, "1.0", "HMAC-SHA1", "1", "k", b"k");
        let _ = body::json_members_as_sent(&body);
        let _ = body::form_pairs_as_sent(&body);
    }

    /// The whole decision with arbitrary header values (absent, once, repeated) and bodies,
    /// on every route of a configuration that uses every option.
    #[test]
    fn decision_never_panics(
        method in prop_oneof![
            prop::sample::select(vec!["POST", "PUT", "GET", "post", ""]).prop_map(|s| s.as_bytes().to_vec()),
            prop::collection::vec(any::<u8>(), 0..8),
        ],
        ct in content_type(),
        cl in header(&["0", "12", " 12 ", "-1", "99999999999999999999999", "4097", "1e3"]),
        md5h in header(&["MzQyMjUyYTExMjUxZTlhZjY1ZjY4YTQ3MDAyNzU1YTA=", "AAAA", " "]),
        sig in header(&["cube-key/pnWR3hcrEXQWV8S+RY0DMjEN9ec=", "old/", "/", "cube-key//////////////////////////////"]),
        ver in header(&["1.0", "1:0", ""]),
        algo in header(&["HMAC-SHA1", "hmac-sha1", "HMAC-SHA256"]),
        ts in header(&["12345648444", "99999999999999999999", "0", "1700000000000"]),
        ct_count in 0u8..4,
        body in json_ish(),
        now in any::<u64>(),
    ) {
        let c = Config::from_json(&serde_json::to_vec(&full_config()).unwrap(), env).unwrap();
        let push = |name: &'static str, (count, value): &(u8, Vec<u8>), pairs: &mut Vec<(&'static str, Vec<u8>)>| {
            for _ in 0..(*count).min(2) {
                pairs.push((name, value.clone()));
            }
        };
        let mut pairs: Vec<(&'static str, Vec<u8>)> = vec![(":method", method)];
        push("content-type", &(ct_count, ct), &mut pairs);
        push("content-length", &cl, &mut pairs);
        push(MD5_HEADER, &md5h, &mut pairs);
        push(CUBE_SIGNATURE_HEADER, &sig, &mut pairs);
        push(CUBE_VERSION_HEADER, &ver, &mut pairs);
        push(CUBE_ALGO_HEADER, &algo, &mut pairs);
        push(CUBE_TIMESTAMP_HEADER, &ts, &mut pairs);
        let head = RequestHead::from_pairs(pairs.iter().map(|(n, v)| (*n, v.as_slice())));
        for route in 0..c.routes.len() + 1 {
            run_everything(&c, route, &head, &body, now);
        }
    }

    /// Signature header parsers and the md5 comparison, on arbitrary bytes.
    #[test]
    fn signature_parsers_never_panic(
        h in prop::collection::vec(any::<u8>(), 0..64),
        a in prop::collection::vec(any::<u8>(), 0..16),
        b in prop::collection::vec(any::<u8>(), 0..24),
    ) {
        let _ = cube::parse_signature(&h);
        let _ = cube::signed_prefix(&h, &a, &b);
        let _ = cube::signed_prefix(b"1.0", b"HMAC-SHA1", &b);
        let mut s = md5_scheme::Md5Signer::new();
        s.update(&a);
        let secrets: [&[u8]; 2] = [&b, b"k"];
        prop_assert!(s.verify(&h, secrets).is_err() || h.trim_ascii().len() == 44);
        let mut v = HeaderValue::Absent;
        v.push(&h);
    }

    /// Timestamps: legacy body times (epoch ms, provider date formats, garbage), any UTC
    /// offset, and the window check at the extremes of u64.
    #[test]
    fn timestamps_never_panic(
        text in prop_oneof![
            ".{0,24}",
            "[0-9]{0,22}",
            "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:?[0-9]{2}:?[0-9]{2}Z?",
            "[-+0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}",
        ],
        offset in any::<i32>(),
        sent in any::<u64>(),
        now in any::<u64>(),
        age in any::<u64>(),
        skew in any::<u64>(),
    ) {
        let _ = freshness::parse_body_time(&text, offset);
        let _ = freshness::parse_body_time(&text, 0);
        let window = lf_webhook_guard::config::Freshness {
            max_age_ms: age,
            max_future_skew_ms: skew,
            body_field: "received_at".into(),
            body_field_utc_offset_minutes: offset,
        };
        if let Err(r) = freshness::check(&window, sent, now) {
            prop_assert_eq!(r.reason, Reason::StaleNotification);
        }
    }

    /// The config parser on arbitrary bytes and arbitrary JSON values: Ok or a ConfigError.
    #[test]
    fn config_parser_never_panics_on_arbitrary_json(
        raw in prop::collection::vec(any::<u8>(), 0..64),
        value in json_value(),
    ) {
        let _ = Config::from_json(&raw, env);
        if let Ok(c) = Config::from_json(&serde_json::to_vec(&value).unwrap(), env) {
            let _ = c.route_index(b"/a");
        }
    }

    /// The config parser on a valid config with one structural change. When it is still
    /// accepted, the compiled config works: routes, paths and a decision.
    #[test]
    fn config_parser_never_panics_on_mutated_config(
        value in mutated_config(),
        path in prop::collection::vec(any::<u8>(), 0..24),
        body in json_ish(),
    ) {
        let text = serde_json::to_vec(&value).unwrap();
        match Config::from_json(&text, env) {
            Ok(c) => {
                let _ = lf_webhook_guard::route::skeleton(&path);
                let _ = c.classify(&path);
                let _ = c.route_for(&path);
                let head = md5_head(b"application/json", b"MzQyMjUyYTExMjUxZTlhZjY1ZjY4YTQ3MDAyNzU1YTA=");
                for route in 0..c.routes.len() {
                    run_everything(&c, route, &head, &body, NOW);
                }
                let _ = lf_webhook_guard::metrics::MetricTable::new(&c.keys);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

proptest! {
    #![proptest_config(cases(256, 1))]

    /// Untrusted text that reaches log lines and JSON replies (request ids, partner codes) is
    /// bounded and confined to `[A-Za-z0-9._:-]`, whatever it was; the reply stays valid JSON.
    #[test]
    fn log_and_reply_text_is_sanitized(raw in prop::collection::vec(any::<u8>(), 0..300), text in ".{0,100}") {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
        let id = lf_webhook_guard::verdict::sanitize_request_id(&raw);
        prop_assert!(id.len() <= 128 && id.chars().all(ok));
        let token = lf_webhook_guard::verdict::sanitize(text.chars(), lf_webhook_guard::log::MAX_PARTNER_CHARS);
        prop_assert!(token.chars().count() <= 64 && token.chars().all(ok));
        for reason in Reason::ALL {
            let reply: serde_json::Value =
                serde_json::from_str(&lf_webhook_guard::verdict::reply_body(reason, &id)).unwrap();
            prop_assert_eq!(&reply["request_id"], &json!(id));
            prop_assert_eq!(&reply["error"], &json!(reason.category()));
        }
    }
}

#[test]
fn full_config_is_valid() {
    Config::from_json(&serde_json::to_vec(&full_config()).unwrap(), env).unwrap();
}

// ---------------------------------------------------- 4: no unbounded recursion ----

/// Bodies nested `depth` levels deep, in every shape: objects, arrays, mixed, unclosed, and
/// the same brackets inside a string (which is plain text and must be accepted).
fn deep_bodies(depth: usize) -> Vec<(&'static str, Vec<u8>)> {
    let closed = |open: &str, close: &str, leaf: &str| {
        let mut s = String::from("{\"a\":");
        s.push_str(&open.repeat(depth));
        s.push_str(leaf);
        s.push_str(&close.repeat(depth));
        s.push('}');
        s.into_bytes()
    };
    vec![
        ("objects", closed("{\"a\":", "}", "1")),
        ("arrays", closed("[", "]", "1")),
        ("mixed", closed("[{\"a\":", "}]", "null")),
        (
            "bare arrays",
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes(),
        ),
        ("unclosed objects", "{\"a\":".repeat(depth).into_bytes()),
        (
            "unclosed arrays",
            format!("{{\"a\":{}", "[".repeat(depth)).into_bytes(),
        ),
        (
            "form brackets",
            format!("a={}", "[".repeat(depth)).into_bytes(),
        ),
        (
            "in a string",
            format!("{{\"a\":\"{}{}\"}}", "[{".repeat(depth), "}]".repeat(depth)).into_bytes(),
        ),
    ]
}

/// Every parser that sees a body or a config, on one deep input. Returns whether the md5 and
/// Cube decisions accepted it.
fn parse_deep(body: &[u8]) -> (bool, bool) {
    let c = config("s3cret", "kid", "key");
    for media in [MediaType::Json, MediaType::Form] {
        for nested_values in [NestedValues::Reject, NestedValues::Raw] {
            let opts = Md5Options {
                nested_values,
                ..Md5Options::default()
            };
            if let Ok(p) = Params::parse(media, body, &opts) {
                md5_prefix(&p, EmptyValues::Keep, |_| {});
            }
        }
    }
    if let Ok(j) = Json::parse(body) {
        cube_json(&j, &mut |_| {});
    }
    let _ = body::json_members_as_sent(body);
    let _ = Config::from_json(body, env);
    let _ = oracle_cube(body);
    let md5 = sign_md5(MediaType::Json, body, &Md5Options::default(), b"s3cret")
        .map(|sig| {
            decide(
                &c,
                MD5_PATH,
                &md5_head(b"application/json", sig.as_bytes()),
                body,
            )
            .is_ok()
        })
        .unwrap_or(false);
    let h = CubeHeaders {
        version: "1.0".into(),
        algo: "HMAC-SHA1".into(),
        timestamp: "1".into(),
    };
    let cube = sign_cube(body, "1.0", "HMAC-SHA1", "1", "kid", b"key")
        .map(|sig| decide(&c, CUBE_PATH, &cube_head(&h, sig.as_bytes()), body).is_ok())
        .unwrap_or(false);
    (md5, cube)
}

#[test]
fn deep_nesting_is_rejected_without_deep_recursion() {
    for depth in [10_000, 100_000] {
        for (shape, body) in deep_bodies(depth) {
            let (md5, cube) = on_small_stack(move || parse_deep(&body));
            let in_string = shape == "in a string";
            assert_eq!(
                (md5, cube),
                (in_string, in_string),
                "{shape} at depth {depth}"
            );
        }
        // A config nested as deep, in a field the parser keeps as a JSON value (`dedup`).
        let config = format!(
            r#"{{"keys":[{{"id":"k","secret":"s"}}],"routes":[{{"path_prefix":"/a"}}],"dedup":{}1{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let err = on_stack(CONFIG_STACK, move || {
            Config::from_json(config.as_bytes(), env).map(|_| ())
        });
        assert!(err.is_err(), "deep config at depth {depth}");
    }
}

proptest! {
    #![proptest_config(cases(64, 4))]

    /// Arbitrary depth and shape: accepted (Cube) exactly when the independent parser, with
    /// the documented limit of 32 levels, accepts it; never a stack overflow.
    #[test]
    fn arbitrary_depth(
        shape in prop::collection::vec(0u8..3, 0..3000),
        leaf in prop::sample::select(vec!["1", "\"x\"", "null", "[]", "{}"]),
        close in any::<bool>(),
    ) {
        let mut body = String::from("{\"k\":");
        for s in &shape {
            body.push_str(match s { 0 => "[", 1 => "{\"a\":", _ => "[0," });
        }
        body.push_str(leaf);
        if close {
            for s in shape.iter().rev() {
                body.push_str(if *s == 1 { "}" } else { "]" });
            }
        }
        body.push('}');
        let expected = oracle_cube(body.as_bytes()).is_some();
        let bytes = body.into_bytes();
        let (_, cube) = on_small_stack(move || parse_deep(&bytes));
        prop_assert_eq!(cube, expected);
    }
}
