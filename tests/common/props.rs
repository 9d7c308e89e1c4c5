//! Support of the property tests (`tests/properties_*.rs`): proptest settings, thread stacks,
//! generated bodies (with the parameters and canonical text they stand for, taken from the
//! generator, not from the body), the test configuration and the decision through the
//! crate's public API.

use std::fmt::Write as _;

use lf_webhook_guard::{
    Config, HeadVerdict, Reason, RequestHead, CUBE_ALGO_HEADER, CUBE_SIGNATURE_HEADER,
    CUBE_TIMESTAMP_HEADER, CUBE_VERSION_HEADER, MD5_HEADER,
};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::json;

use super::{backend_fold, cube_write, form_key_renamed, J};

// ------------------------------------------------------------------------------ settings ----

/// The saved failing cases of the property tests (`cases`).
pub const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/properties.proptest-regressions"
);

/// Proptest settings: `default` cases, or `PROPTEST_CASES / divisor` when that is set (the
/// expensive properties run fewer cases in `make fuzz`). An explicit `with_cases` would ignore
/// `PROPTEST_CASES`, so every property goes through here.
pub fn cases(default: u32, divisor: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(default, |n| (n / divisor).max(1));
    ProptestConfig {
        cases,
        // One file for every property test binary, named explicitly: a failing case is saved
        // there and replayed before new cases by every later run (`WithSource` would tie the
        // file to one source file, the default `SourceParallel` looks for a lib.rs beside
        // tests/ and warns).
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(REGRESSIONS),
        )),
        ..ProptestConfig::default()
    }
}

/// Stack of the threads that parse deeply nested input: unbounded recursion over 10,000 levels
/// needs megabytes even in release, so it would overflow (and abort the test binary) here.
/// The bounded recursion that does exist (serde_json's own limit of 128 levels, the core's
/// limit of 32) fits comfortably, in debug builds too.
pub const SMALL_STACK: usize = 256 * 1024;

/// The config parser reads `dedup` as a `serde_json::Value`, whose recursion serde_json bounds
/// at 128 levels; in a debug build those 128 frames (with serde_path_to_error's wrappers) take
/// between 256 and 512 KiB. The config is the operator's, not a sender's, input; 1 MiB still
/// overflows long before 10,000 levels of unbounded recursion.
pub const CONFIG_STACK: usize = 1024 * 1024;

pub fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    on_stack(SMALL_STACK, f)
}

pub fn on_stack<T: Send + 'static>(size: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .name(format!("stack-{size}"))
        .stack_size(size)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

// ------------------------------------------------------------------ config and decision ----

pub const MD5_KEY_ID: &str = "md5-key";
pub const MD5_PATH: &[u8] = b"/md5/hook";
pub const CUBE_PATH: &[u8] = b"/cube/hook";
pub const NOW: u64 = 1_700_000_000_000;

/// A config built from JSON, as the filter gets it: one md5 key, one Cube key, one route each.
pub fn config(md5_secret: &str, cube_id: &str, cube_key: &str) -> Config {
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
pub fn decide(
    c: &Config,
    path: &[u8],
    head: &RequestHead<'_>,
    body: &[u8],
) -> Result<String, Reason> {
    let route = c.route_index(path).unwrap();
    match lf_webhook_guard::verify::check_head(c, route, head).map_err(|r| r.reason)? {
        HeadVerdict::ForwardUnsigned => Ok("none".into()),
        HeadVerdict::NeedBody(p) => lf_webhook_guard::verify::verify_body(c, &p, body, NOW)
            .map(|a| a.header_value())
            .map_err(|r| r.reason),
    }
}

pub fn md5_head<'a>(content_type: &'a [u8], sig: &'a [u8]) -> RequestHead<'a> {
    RequestHead::from_pairs([
        (":method", &b"POST"[..]),
        ("content-type", content_type),
        (MD5_HEADER, sig),
    ])
}

#[derive(Debug, Clone)]
pub struct CubeHeaders {
    pub version: String,
    pub algo: String,
    pub timestamp: String,
}

pub fn cube_head<'a>(h: &'a CubeHeaders, sig: &'a [u8]) -> RequestHead<'a> {
    RequestHead::from_pairs([
        (":method", &b"POST"[..]),
        ("content-type", &b"application/json; charset=utf-8"[..]),
        (CUBE_VERSION_HEADER, h.version.as_bytes()),
        (CUBE_ALGO_HEADER, h.algo.as_bytes()),
        (CUBE_TIMESTAMP_HEADER, h.timestamp.as_bytes()),
        (CUBE_SIGNATURE_HEADER, sig),
    ])
}

pub fn env(name: &str) -> Option<String> {
    match name {
        "LF_SECRET" => Some("s3cr3t".into()),
        "LF_ID" => Some("from-env".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

// ------------------------------------------------------------------- generated bodies ----

/// A JSON string: its text and how it is written in the body (with a random mix of escapes).
#[derive(Debug, Clone)]
pub struct JStr {
    pub text: String,
    pub json: String,
}

/// Characters that exercise the rules: anything, printable ASCII, and the special ones.
pub fn any_char() -> impl Strategy<Value = char> {
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
pub fn json_char(c: char, how: u8, out: &mut String) {
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

pub fn jstr(len: std::ops::Range<usize>) -> impl Strategy<Value = JStr> {
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
pub fn number() -> impl Strategy<Value = String> {
    "-?(0|[1-9][0-9]{0,6})(\\.[0-9]{1,8})?([eE][+-]?[0-9]{1,2})?"
}

#[derive(Debug, Clone)]
pub enum Node {
    Str(JStr),
    Num(String),
    Bool(bool),
    Null,
    Arr(Vec<Node>),
    Obj(Vec<(JStr, Node)>),
}

pub fn leaf() -> impl Strategy<Value = Node> {
    prop_oneof![
        4 => jstr(0..12).prop_map(Node::Str),
        2 => number().prop_map(Node::Num),
        1 => any::<bool>().prop_map(Node::Bool),
        1 => Just(Node::Null),
    ]
}

/// Object members with unique key texts, also under the backends' key folding, and no control
/// characters in keys (both malformed by design).
pub fn unique(mut members: Vec<(JStr, Node)>) -> Vec<(JStr, Node)> {
    let mut seen = std::collections::HashSet::new();
    members.retain(|(k, _)| {
        !k.text.chars().any(char::is_control) && seen.insert(backend_fold(&k.text))
    });
    members
}

/// A flat object (md5 scheme): non-empty unique keys, scalar values.
pub fn flat_object() -> impl Strategy<Value = Vec<(JStr, Node)>> {
    prop::collection::vec((jstr(1..8), leaf()), 1..8)
        .prop_map(unique)
        .prop_filter("at least one member", |m| !m.is_empty())
}

/// A nested object (Cube scheme): objects and arrays up to a few levels, any keys (even empty).
pub fn nested_object() -> impl Strategy<Value = Vec<(JStr, Node)>> {
    let node = leaf().prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Node::Arr),
            prop::collection::vec((jstr(0..6), inner), 0..6).prop_map(|m| Node::Obj(unique(m))),
        ]
    });
    prop::collection::vec((jstr(0..8), node), 0..8).prop_map(unique)
}

/// Random white space between JSON tokens, drawn from a seed.
pub struct Ws(pub Vec<u8>, pub usize);

impl Ws {
    pub fn next(&mut self) -> &'static str {
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

pub fn render(node: &Node, ws: &mut Ws, out: &mut String) {
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

pub fn render_body(members: &[(JStr, Node)], ws_seed: Vec<u8>) -> Vec<u8> {
    let mut ws = Ws(ws_seed, 0);
    let mut out = String::from(ws.next());
    render(&Node::Obj(members.to_vec()), &mut ws, &mut out);
    out.push_str(ws.next());
    out.into_bytes()
}

/// The md5 parameters of a flat object, from the generator (not from the body).
pub fn flat_pairs(members: &[(JStr, Node)]) -> Vec<(String, String)> {
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

/// The Cube canonical JSON of a generated document (see `cube_write`).
pub fn cube_canonical(node: &Node, out: &mut String) {
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

/// A form string: its text and its encoding, a random mix of raw characters, `+` or `%20` for
/// spaces, and `%XX` (upper or lower hex) of the UTF-8 bytes. `& = % +` and `{ [` (a body that
/// starts with them would be JSON) are always encoded.
#[derive(Debug, Clone)]
pub struct FStr {
    pub text: String,
    pub enc: String,
}

pub fn fstr(len: std::ops::Range<usize>) -> impl Strategy<Value = FStr> {
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
pub fn form_body() -> impl Strategy<Value = (Vec<(String, String)>, Vec<u8>)> {
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

pub fn secret() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{1,40}",
        prop::collection::vec(any_char(), 1..24).prop_map(|c| c.into_iter().collect()),
    ]
}

pub fn key_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,64}".prop_filter("not the md5 key's id", |id| id != MD5_KEY_ID)
}

pub fn cube_headers() -> impl Strategy<Value = CubeHeaders> {
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

pub fn json_content_type() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=\"UTF-8\"",
    ])
}

pub fn form_content_type() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=UTF-8",
    ])
}

/// Bytes a mutation writes: anything, biased to those that change JSON or form structure.
pub fn mutation_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        1 => any::<u8>(),
        2 => prop::sample::select(b" \t\n\r{}[]\",:;\\/0123456789abcdefABCDEFeEuntl+-.%&=".to_vec()),
    ]
}

/// Apply a one-byte change; `None` when the byte is already there (no change).
pub fn mutate(body: &[u8], at: Index, byte: u8) -> Option<Vec<u8>> {
    let i = at.index(body.len());
    (body[i] != byte).then(|| {
        let mut m = body.to_vec();
        m[i] = byte;
        m
    })
}
