//! Shared by the integration tests (`mod common;` in each `tests/*.rs`).
//!
//! This file is the one independent oracle of the test suite: the signatures and signed texts
//! the tests expect, and the strict JSON and form parsers that decide what the core must do
//! with a body, written out from the documented rules (docs, provider protocols) with md-5 and
//! hmac-sha1 directly. It uses nothing of `lf_webhook_guard`: it is the cross-check of the
//! crate's canonicalisers and signers, not a second copy of them.
//!
//! - [`props`]: proptest settings, thread stacks, generated bodies, the test configuration and
//!   the decision helper of the property tests (`tests/properties_*.rs`).
//! - [`cli`]: running the `lf-webhook-guard` binary (`tests/cli_*.rs`).

// Each test binary uses a part of this module.
#![allow(dead_code)]

pub mod cli;
pub mod props;

use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};

// ------------------------------------------------------------ independent signatures ----

/// Hex of MD5(text), lower or upper case.
pub fn md5_hex(text: &[u8], upper: bool) -> String {
    Md5::digest(text)
        .iter()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect()
}

/// The raw 16-byte MD5 digest of a text.
pub fn md5_digest(text: &[u8]) -> Vec<u8> {
    Md5::digest(text).to_vec()
}

/// `x-lf-md5` for a signed text: base64 of the lowercase hex MD5.
pub fn md5_header(text: &[u8]) -> String {
    STANDARD.encode(md5_hex(text, false))
}

/// The md5 signed text of (key, value) pairs: sorted by key (bytes), `k=v` joined by `&`,
/// then `&` and the secret. Values raw (not URL-encoded), empty values kept (`k=`).
pub fn md5_text(pairs: &[(String, String)], secret: &str) -> String {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::new();
    for (k, v) in sorted {
        let _ = write!(out, "{k}={v}&");
    }
    out.push_str(secret);
    out
}

/// base64(HMAC-SHA1(key, text)): the part of `x-lf-signature` after the key id.
pub fn hmac_sha1_b64(key: &[u8], text: &[u8]) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).unwrap();
    mac.update(text);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// `x-lf-signature`: `{keyId}/base64(HMAC-SHA1(key, text))`.
pub fn cube_header(key_id: &str, key: &[u8], text: &[u8]) -> String {
    format!("{key_id}/{}", hmac_sha1_b64(key, text))
}

// ------------------------------------------------------- independent Cube canonical JSON ----

/// A string in the Cube canonical form: `"`, `\`, `\n`, `\r`, `\t`, `\b`, `\f` short-escaped,
/// other control characters as `\u00xx`, everything else (`/`, DEL, non-ASCII) as UTF-8.
pub fn cube_string(s: &str, out: &mut String) {
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

/// Cube canonical JSON, written independently of the core: compact, keys sorted by bytes at
/// every level, numbers as written, strings re-escaped by `cube_string`.
pub fn cube_write(v: &J, out: &mut String) {
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

// --------------------------------------------- independent strict parsers ----

/// A key as the most lenient backend parser reads it (docs/integrity.md), written out here
/// independently of the core: ASCII case (Go's struct fields), `ſ`/`K` (Go's Unicode folds),
/// PHP's `.`, space and `[` -> `_` and dropped leading spaces.
pub fn backend_fold(key: &str) -> String {
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
pub fn keys_ambiguous<'a>(keys: impl Iterator<Item = &'a str>) -> bool {
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
pub fn form_key_renamed(key: &str) -> bool {
    key.contains(['.', ' ', '[', ']'])
}

/// A number literal every runtime reads as written: an integer up to 2^53 - 1, or a finite,
/// non-tiny decimal of at most 15 significant digits.
pub fn number_exact(lit: &str) -> bool {
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

/// An independent, strict parse of a JSON body, by the rules docs/signing.md documents (RFC 8259
/// syntax; strings decoded, lone surrogates and raw control characters invalid; numbers kept
/// as written; duplicate keys at any level and nesting deeper than 32 levels malformed).
/// It decides, for a mutated body, what the core must do with it.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

/// The core's documented limit (`body::MAX_NESTED_DEPTH`), written out independently.
pub const MAX_DEPTH: usize = 32;

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
pub fn parse_strict(body: &[u8]) -> Option<J> {
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
pub fn oracle_md5_json(body: &[u8]) -> Option<Vec<(String, String)>> {
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
pub fn oracle_cube(body: &[u8]) -> Option<String> {
    let mut out = String::new();
    cube_write(&parse_strict(body)?, &mut out);
    Some(out)
}

/// What an independent strict form parse makes of a body.
#[derive(Debug, PartialEq)]
pub enum FormOracle {
    Pairs(Vec<(String, String)>),
    /// Starts (after white space) with `{` or `[`: JSON declared as form.
    LooksJson,
    Malformed,
}

/// Form rules as documented: UTF-8; split on `&`, empty segments ignored; every pair has `=`
/// (split at the first); `+` is a space; every `%` starts a valid `%XX`; decoded text UTF-8;
/// no raw `;` (a pair separator for some parsers: ambiguous); keys non-empty and unique; at
/// least one pair.
pub fn oracle_form(body: &[u8]) -> FormOracle {
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
