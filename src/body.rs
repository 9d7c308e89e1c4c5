//! Request body -> [`Params`]: the ordered list of (key, value) text pairs that the legacy
//! scheme signs. JSON and form decoding, the content-type rule, duplicate keys, nesting, empty
//! values and UTF-8 rules live here and nowhere else.
//!
//! Rules (also in docs/signing.md):
//! - JSON: the body must be one object. A string value is its decoded text (escapes such as
//!   `\u00e9` decoded, signed as UTF-8). A number is its literal text exactly as sent (`18`,
//!   `1.50`, `1e3`: never re-formatted). `true`/`false` are those words. `null` is an empty value.
//!   A nested object or array is rejected, or with `nested_values: raw` signed as its JSON text
//!   exactly as sent. Nesting deeper than [`MAX_NESTED_DEPTH`] levels is malformed.
//! - Form: `key=value` pairs split on `&`, `+` and `%XX` decoded (serde_urlencoded). Every pair
//!   must contain `=`; every `%` must start a valid escape; the decoded text must be UTF-8; a
//!   raw `;` is rejected (a pair separator for some parsers; `%3B` is a plain character).
//!   Empty segments (`a=1&&b=2`) are ignored, as every mainstream parser does.
//! - Both: keys must be non-empty and unique (a repeated key is ambiguous: rejected); the body
//!   must not be empty and must hold at least one pair.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::verdict::{Reason, Rejection};

/// What the legacy canonical string does with empty values (`""` and `null`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyValues {
    /// `key=` is part of the signed string (default).
    #[default]
    Keep,
    /// Pairs with an empty value are left out of the signed string (still forwarded).
    Skip,
}

/// What the legacy canonical string does with nested JSON objects and arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NestedValues {
    /// A nested object or array makes the body malformed (default).
    #[default]
    Reject,
    /// The value's JSON text exactly as it appears in the body is signed.
    Raw,
}

/// Which JSON value types the legacy scheme accepts. Its signed text does not carry the type
/// (`false` and `"false"`, `0` and `"0"`, `null` and `""` sign alike), and backends act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueTypes {
    /// Only JSON strings (the provider documents string values only); a number, boolean or
    /// `null` makes the body malformed (default).
    #[default]
    Strings,
    /// Numbers, booleans and `null` too, signed as their text (`null` as empty): their type is
    /// NOT bound by the signature.
    Any,
}

/// Canonicalisation options of the legacy scheme (the plugin config's `md5` section).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Md5Options {
    pub empty_values: EmptyValues,
    pub nested_values: NestedValues,
    pub value_types: ValueTypes,
}

/// The two body encodings Linksfield uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    Json,
    Form,
}

const fn unsupported(detail: &'static str) -> Rejection {
    Rejection::new(Reason::UnsupportedMediaType, detail)
}
const fn malformed(detail: &'static str) -> Rejection {
    Rejection::new(Reason::MalformedBody, detail)
}

/// Parse a `Content-Type` value: `application/json` or `application/x-www-form-urlencoded`,
/// optionally with `charset=utf-8` (any case, optionally quoted). Any other type, charset or
/// parameter is unsupported.
pub fn media_type(content_type: &[u8]) -> Result<MediaType, Rejection> {
    let text =
        std::str::from_utf8(content_type).map_err(|_| unsupported("content-type is not ASCII"))?;
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or("").trim();
    let media = if essence.eq_ignore_ascii_case("application/json") {
        MediaType::Json
    } else if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        MediaType::Form
    } else {
        return Err(unsupported("content-type is neither JSON nor form"));
    };
    for param in parts {
        let param = param.trim();
        if param.is_empty() {
            continue;
        }
        let (name, value) = param
            .split_once('=')
            .ok_or(unsupported("malformed content-type parameter"))?;
        if !name.trim().eq_ignore_ascii_case("charset") {
            return Err(unsupported("content-type parameter other than charset"));
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        if !value.eq_ignore_ascii_case("utf-8") {
            return Err(unsupported("charset other than utf-8"));
        }
    }
    Ok(media)
}

/// Guess the encoding of a body (for the CLI): JSON if it starts with `{` after white space.
pub fn sniff(body: &[u8]) -> MediaType {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | Some(b'[') => MediaType::Json,
        _ => MediaType::Form,
    }
}

/// One parameter value, as the canonicaliser needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// Text (decoded JSON string, number literal, `true`/`false`, decoded form value,
    /// or raw nested JSON under `nested_values: raw`).
    Text(Cow<'a, str>),
    /// `""`, JSON `null`, or a form value with nothing after `=`.
    Empty,
}

impl Value<'_> {
    pub fn as_str(&self) -> &str {
        match self {
            Value::Text(t) => t,
            Value::Empty => "",
        }
    }
}

/// The body's parameters, sorted by key (byte-wise), keys unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params<'a> {
    pairs: Vec<(Cow<'a, str>, Value<'a>)>,
}

impl<'a> Params<'a> {
    /// Parse a body of the given media type under the legacy options.
    pub fn parse(media: MediaType, body: &'a [u8], opts: &Md5Options) -> Result<Self, Rejection> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(malformed("empty body"));
        }
        reject_bom(body)?;
        let mut pairs = match media {
            MediaType::Json => parse_json(body, opts)?,
            MediaType::Form => parse_form(body)?,
        };
        if pairs.is_empty() {
            return Err(malformed("no parameters"));
        }
        pairs.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        if pairs.windows(2).any(|w| matches!(w, [a, b] if a.0 == b.0)) {
            return Err(malformed("duplicate key"));
        }
        if pairs.iter().any(|(k, _)| k.is_empty()) {
            return Err(malformed("empty key"));
        }
        check_key_spellings(
            pairs.iter().map(|(k, _)| k.as_ref()),
            media == MediaType::Form,
        )?;
        Ok(Params { pairs })
    }

    /// The pairs that are signed, in canonical (sorted) order, after the empty-value rule.
    pub fn signed<'s>(
        &'s self,
        empty: EmptyValues,
    ) -> impl Iterator<Item = (&'s str, &'s str)> + 's {
        self.pairs
            .iter()
            .filter_map(move |(k, v)| match (v, empty) {
                (Value::Empty, EmptyValues::Skip) => None,
                _ => Some((k.as_ref(), v.as_str())),
            })
    }

    /// All pairs, sorted.
    pub fn pairs(&self) -> &[(Cow<'a, str>, Value<'a>)] {
        &self.pairs
    }

    /// The value of one key, if present.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.pairs
            .binary_search_by(|(k, _)| k.as_bytes().cmp(key.as_bytes()))
            .ok()
            .and_then(|i| self.pairs.get(i))
            .map(|(_, v)| v)
    }
}

// ----------------------------------------------------------------------------------- JSON ----

/// A string that borrows from the input when it has no escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The top-level object as (key, raw value) pairs, in body order, duplicates kept.
struct TopLevel<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
                while let Some((k, v)) = map.next_entry::<CowStr<'de>, &'de RawValue>()? {
                    out.push((k.0, v));
                }
                Ok(TopLevel(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn parse_json<'a>(
    body: &'a [u8],
    opts: &Md5Options,
) -> Result<Vec<(Cow<'a, str>, Value<'a>)>, Rejection> {
    // Validate UTF-8 once for the whole body (from_slice would re-check every raw value).
    let body = std::str::from_utf8(body).map_err(|_| malformed("body is not UTF-8"))?;
    match flat_object(body, opts.value_types == ValueTypes::Strings) {
        Some(pairs) => Ok(pairs),
        None => parse_json_serde(body, opts),
    }
}

/// [`parse_json`] by serde_json: every JSON text, every rule.
fn parse_json_serde<'a>(
    body: &'a str,
    opts: &Md5Options,
) -> Result<Vec<(Cow<'a, str>, Value<'a>)>, Rejection> {
    let strings_only = opts.value_types == ValueTypes::Strings;
    let top: TopLevel<'_> = serde_json::from_str(body)
        .map_err(|_| malformed("not a single well-formed JSON object"))?;
    let mut pairs = Vec::with_capacity(top.0.len());
    for (key, raw) in top.0 {
        let text = raw.get();
        let value = match text.as_bytes().first() {
            Some(b'"') => {
                let s = json_string_value(text).ok_or(malformed("bad JSON string"))?;
                if s.is_empty() {
                    Value::Empty
                } else {
                    Value::Text(s)
                }
            }
            Some(_) if strings_only && !matches!(text.as_bytes().first(), Some(b'{' | b'[')) => {
                return Err(malformed(
                    "number, boolean or null value (md5.value_types is `strings`)",
                ))
            }
            Some(b'n') => Value::Empty,
            Some(b'{') | Some(b'[') => match opts.nested_values {
                NestedValues::Reject => return Err(malformed("nested object or array")),
                NestedValues::Raw if depth_exceeds(text, MAX_NESTED_DEPTH) => {
                    return Err(malformed("nesting too deep"))
                }
                NestedValues::Raw => Value::Text(Cow::Borrowed(text)),
            },
            Some(b't' | b'f') => Value::Text(Cow::Borrowed(text)),
            // Numbers: the literal text as sent, if every runtime reads that value.
            Some(_) => Value::Text(Cow::Borrowed(exact_number(text)?)),
            None => return Err(malformed("empty JSON value")),
        };
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// The fast path of [`parse_json`] for what providers send: one flat object whose keys and
/// string values have no escapes, and whose other values are `true`, `false`, `null` or plain
/// integers. One scan, no allocation besides the result. `None` for anything else (escapes,
/// nesting, decimals, any syntax error...): the caller then runs the full serde_json path, which
/// decides it. When it returns `Some`, the result is exactly the full path's (proven by the
/// `flat_object_agrees_with_serde_json` property test).
fn flat_object(body: &str, strings_only: bool) -> Option<Vec<(Cow<'_, str>, Value<'_>)>> {
    let bytes = body.as_bytes();
    let ws = |i: usize| flat_ws(bytes, i);
    let mut i = ws(0);
    if bytes.get(i) != Some(&b'{') {
        return None;
    }
    let mut pairs = Vec::with_capacity(16);
    i = ws(i + 1);
    if bytes.get(i) == Some(&b'}') {
        return (ws(i + 1) == bytes.len()).then_some(pairs);
    }
    loop {
        if bytes.get(i) != Some(&b'"') {
            return None;
        }
        let (key, after) = flat_string(body, i)?;
        i = ws(after);
        if bytes.get(i) != Some(&b':') {
            return None;
        }
        let (value, after) = flat_value(body, ws(i + 1), strings_only)?;
        pairs.push((Cow::Borrowed(key), value));
        i = ws(after);
        match bytes.get(i)? {
            b',' => i = ws(i + 1),
            b'}' => return (ws(i + 1) == bytes.len()).then_some(pairs),
            _ => return None,
        }
    }
}

/// The index of the first byte at or after `i` that is not JSON white space.
fn flat_ws(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// A string without escapes starting at the quote at `i`: its contents and the index after it.
fn flat_string(body: &str, i: usize) -> Option<(&str, usize)> {
    let bytes = body.as_bytes();
    let start = i.checked_add(1)?;
    let end = string_stop(bytes, start)?;
    match bytes.get(end) {
        // Quotes are ASCII: both ends are char boundaries of the (valid UTF-8) body.
        Some(b'"') => Some((body.get(start..end)?, end.checked_add(1)?)),
        _ => None,
    }
}

/// A fast-path value at `i` (see [`flat_object`]) and the index after it.
fn flat_value(body: &str, i: usize, strings_only: bool) -> Option<(Value<'_>, usize)> {
    let bytes = body.as_bytes();
    let literal = |text: &'static str| {
        let end = i.checked_add(text.len())?;
        (bytes.get(i..end) == Some(text.as_bytes())).then_some(end)
    };
    match bytes.get(i)? {
        b'"' => {
            let (text, after) = flat_string(body, i)?;
            let value = if text.is_empty() {
                Value::Empty
            } else {
                Value::Text(Cow::Borrowed(text))
            };
            Some((value, after))
        }
        _ if strings_only => None,
        b'n' => Some((Value::Empty, literal("null")?)),
        b't' => Some((Value::Text(Cow::Borrowed("true")), literal("true")?)),
        b'f' => Some((Value::Text(Cow::Borrowed("false")), literal("false")?)),
        b'-' | b'0'..=b'9' => {
            // An integer: `-?(0|[1-9][0-9]*)`, read exactly by every backend.
            let digits_at = i + usize::from(bytes.get(i) == Some(&b'-'));
            let digits = bytes
                .get(digits_at..)?
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let end = digits_at + digits;
            if digits == 0 || (digits > 1 && bytes.get(digits_at) == Some(&b'0')) {
                return None;
            }
            let text = exact_number(body.get(i..end)?).ok()?;
            Some((Value::Text(Cow::Borrowed(text)), end))
        }
        _ => None,
    }
}

/// The index of the first `"`, `\\` or control character at or after `from`: eight bytes per
/// step (the SWAR test of serde_json's own string scan; the lowest flagged byte of each test is
/// exact, so the lowest of the three is the first stop), then byte by byte.
fn string_stop(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x;
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at.checked_add(8)?) {
        let x = u64::from_le_bytes(chunk.try_into().ok()?);
        let stops = (zero_byte(x ^ (ONES * u64::from(b'"')))
            | zero_byte(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x))
            & HIGH;
        if stops != 0 {
            return at.checked_add(usize::try_from(stops.trailing_zeros() / 8).ok()?);
        }
        at += 8;
    }
    let rest = bytes.get(at..)?;
    Some(
        at + rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?,
    )
}

/// Deepest nesting accepted inside a value under `nested_values: raw` (the top-level object is
/// depth 0). Deeper bodies are malformed: mainstream parsers behind the proxy have limits too.
/// The decoded text of a JSON string value given as its raw text (quotes included), already
/// validated by serde_json. Hot path: without a backslash the text between the quotes IS the
/// value (serde_json has rejected raw control characters), so it is borrowed without a second
/// parse; with escapes it is decoded by serde_json.
fn json_string_value(raw: &str) -> Option<Cow<'_, str>> {
    match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) if !inner.contains('\\') => Some(Cow::Borrowed(inner)),
        _ => serde_json::from_str::<CowStr<'_>>(raw).ok().map(|s| s.0),
    }
}

pub const MAX_NESTED_DEPTH: usize = 32;

/// Whether well-formed JSON text nests objects/arrays deeper than `limit` (iterative scan).
fn depth_exceeds(text: &str, limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

// ------------------------------------------------------------------------------ JSON tree ----

/// A JSON document for the Cube scheme: every object's members sorted by key (byte-wise) and
/// unique, numbers kept as their literal text, strings decoded. Built by [`Json::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    /// The number's literal text exactly as sent.
    Number(&'a str),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    /// Members sorted by key, keys unique.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

/// Elements of one array, as raw values.
struct RawArray<'a>(Vec<&'a RawValue>);

impl<'de> Deserialize<'de> for RawArray<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawArray<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON array")
            }
            fn visit_seq<S: de::SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(64));
                while let Some(v) = seq.next_element::<&'de RawValue>()? {
                    out.push(v);
                }
                Ok(RawArray(out))
            }
        }
        d.deserialize_seq(V)
    }
}

impl<'a> Json<'a> {
    /// Parse a Cube body: one JSON object; duplicate keys at any level, nesting deeper than
    /// [`MAX_NESTED_DEPTH`] and invalid UTF-8 are malformed.
    pub fn parse(body: &'a [u8]) -> Result<Json<'a>, Rejection> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(malformed("empty body"));
        }
        reject_bom(body)?;
        let text = std::str::from_utf8(body).map_err(|_| malformed("body is not UTF-8"))?;
        let top: TopLevel<'a> = serde_json::from_str(text)
            .map_err(|_| malformed("not a single well-formed JSON object"))?;
        Json::object(top, 0)
    }

    fn object(top: TopLevel<'a>, depth: usize) -> Result<Json<'a>, Rejection> {
        let mut members = Vec::with_capacity(top.0.len());
        for (k, raw) in top.0 {
            members.push((k, Json::value(raw.get(), depth + 1)?));
        }
        members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        if members
            .windows(2)
            .any(|w| matches!(w, [a, b] if a.0 == b.0))
        {
            return Err(malformed("duplicate key"));
        }
        check_key_spellings(members.iter().map(|(k, _)| k.as_ref()), false)?;
        Ok(Json::Object(members))
    }

    fn value(text: &'a str, depth: usize) -> Result<Json<'a>, Rejection> {
        if depth > MAX_NESTED_DEPTH {
            return Err(malformed("nesting too deep"));
        }
        let bad = |_| malformed("bad JSON value");
        Ok(match text.as_bytes().first() {
            Some(b'{') => Json::object(serde_json::from_str(text).map_err(bad)?, depth)?,
            Some(b'[') => {
                let items: RawArray<'a> = serde_json::from_str(text).map_err(bad)?;
                let mut out = Vec::with_capacity(items.0.len());
                for raw in items.0 {
                    out.push(Json::value(raw.get(), depth + 1)?);
                }
                Json::Array(out)
            }
            Some(b'"') => Json::String(json_string_value(text).ok_or(malformed("bad JSON value"))?),
            Some(b't') => Json::Bool(true),
            Some(b'f') => Json::Bool(false),
            Some(b'n') => Json::Null,
            Some(_) => Json::Number(exact_number(text)?),
            None => return Err(malformed("empty JSON value")),
        })
    }

    /// A top-level string member (e.g. `partner_code`), if this is an object holding one.
    pub fn top_level_str(&self, key: &str) -> Option<&str> {
        match self {
            Json::Object(members) => members
                .binary_search_by(|(k, _)| k.as_bytes().cmp(key.as_bytes()))
                .ok()
                .and_then(|i| members.get(i))
                .and_then(|(_, v)| match v {
                    Json::String(s) => Some(s.as_ref()),
                    _ => None,
                }),
            _ => None,
        }
    }
}

// ------------------------------------------------------------------------------- numbers ----

/// Largest integer every mainstream runtime holds exactly (JavaScript's `Number.MAX_SAFE_INTEGER`).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A JSON number literal that every modelled backend reads as the same value, or malformed: an
/// integer of magnitude at most 2^53 - 1 (Node and PHP read larger ones as floats, Go's `int`
/// fields overflow), or a decimal of at most 15 significant digits that is finite as a double
/// (`1e400` is infinity to Python, Node and PHP and an error to Go). The signature covers the
/// literal text; the backend acts on the value: both must agree.
fn exact_number(text: &str) -> Result<&str, Rejection> {
    let unexact = || {
        malformed("number that not every backend reads exactly (JSON numbers: integers up to 2^53-1, decimals up to 15 significant digits)")
    };
    let body = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (body.get(..i).unwrap_or(""), body.get(i + 1..)),
        None => (body, None),
    };
    if exponent.is_none() && !mantissa.contains('.') {
        return match mantissa.parse::<u64>() {
            Ok(n) if n <= MAX_SAFE_INTEGER => Ok(text),
            _ => Err(unexact()),
        };
    }
    let is_digit = |b: &u8| b.is_ascii_digit();
    let total = mantissa.bytes().filter(is_digit).count();
    let lead = mantissa
        .bytes()
        .filter(is_digit)
        .take_while(|&b| b == b'0')
        .count();
    let trail = mantissa
        .bytes()
        .rev()
        .filter(is_digit)
        .take_while(|&b| b == b'0')
        .count();
    let significant = total.saturating_sub(lead + trail);
    let value: f64 = text.parse().map_err(|_| unexact())?;
    if significant > 15 || !value.is_finite() || (value != 0.0 && value.abs() < 1e-300) {
        return Err(unexact());
    }
    Ok(text)
}

/// A body that starts with a UTF-8 byte order mark: some parsers strip it (Express
/// `body-parser`), others keep it in the first key.
fn reject_bom(body: &[u8]) -> Result<(), Rejection> {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    if body
        .get(start..)
        .is_some_and(|b| b.starts_with(b"\xEF\xBB\xBF"))
    {
        return Err(malformed("byte order mark at the start of the body"));
    }
    Ok(())
}

// ------------------------------------------------------------------------ key spellings ----

/// Keys that are distinct here but one key to a mainstream backend parser are ambiguous: the
/// filter would verify one and the backend act on the other. Rejected (`malformed_body`):
/// - keys equal after [`fold_key`] (Go's `encoding/json` matches struct fields
///   case-insensitively, with Unicode folds; PHP's `parse_str` turns `.`, space and `[` into `_`
///   and drops leading spaces);
/// - control characters in a key (truncation in C-based parsers);
/// - form keys with `[` or `]` (PHP and `qs` read `a[b]` as a nested array: never the signed
///   flat pair).
///
/// Keys made only of `[a-z0-9_-]` (every provider field) take a fast path with no allocation.
pub fn check_key_spellings<'k>(
    keys: impl Iterator<Item = &'k str> + Clone,
    form: bool,
) -> Result<(), Rejection> {
    let plain = |k: &str| {
        k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    if keys.clone().all(plain) {
        return Ok(());
    }
    for k in keys.clone() {
        if k.chars().any(char::is_control) {
            return Err(malformed("control character in a key"));
        }
        if form && k.contains(['[', ']']) {
            return Err(malformed("bracket in a form key (nested to PHP and qs)"));
        }
    }
    let mut folded: Vec<String> = keys.map(fold_key).collect();
    folded.sort_unstable();
    if folded.windows(2).any(|w| matches!(w, [a, b] if a == b)) {
        return Err(malformed(
            "ambiguous keys (equal ignoring case, or to PHP's key rewriting)",
        ));
    }
    Ok(())
}

/// A key as the most lenient modelled parser reads it (see [`check_key_spellings`]).
pub fn fold_key(key: &str) -> String {
    key.trim_start_matches(' ')
        .chars()
        .map(|c| match c {
            '.' | ' ' | '[' => '_',
            '\u{017F}' => 's',
            '\u{212A}' => 'k',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

// ------------------------------------------------------------------- as sent (CLI only) ----

/// The top-level members of a JSON object body AS SENT: each key decoded, each value's raw JSON
/// text, in body order, duplicates kept. For the CLI (`explain`, `diagnose`), which describes
/// and varies the rules; the filter itself only uses [`Params::parse`] and [`Json::parse`].
pub fn json_members_as_sent(body: &[u8]) -> Result<Vec<(Cow<'_, str>, &RawValue)>, Rejection> {
    let top: TopLevel<'_> = serde_json::from_slice(body)
        .map_err(|_| malformed("not a single well-formed JSON object"))?;
    Ok(top.0)
}

/// The pairs of a form body AS SENT (not decoded): split on `&`, then on the first `=`; empty
/// segments skipped, as [`Params::parse`] does. For the CLI (`explain`, `diagnose`).
pub fn form_pairs_as_sent(body: &[u8]) -> Vec<(&[u8], &[u8])> {
    body.split(|&b| b == b'&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let mut parts = segment.splitn(2, |&b| b == b'=');
            let key = parts.next().unwrap_or_default();
            let value = parts.next().unwrap_or_default();
            (key, value)
        })
        .collect()
}

// ----------------------------------------------------------------------------------- form ----

fn parse_form(body: &[u8]) -> Result<Vec<(Cow<'_, str>, Value<'_>)>, Rejection> {
    if sniff(body) == MediaType::Json {
        return Err(unsupported("JSON body declared as form"));
    }
    validate_form(body)?;
    let decoded: Vec<(Cow<'_, str>, Cow<'_, str>)> =
        serde_urlencoded::from_bytes(body).map_err(|_| malformed("bad form encoding"))?;
    for (k, v) in &decoded {
        // PHP's parse_str stops at a NUL and renames keys with `.` or spaces (and drops leading
        // spaces): the backend would read another parameter set than the one signed.
        if v.contains('\0') {
            return Err(malformed("NUL in a form value"));
        }
        if k.contains(['.', ' ']) {
            return Err(malformed("`.` or space in a form key (renamed by PHP)"));
        }
    }
    Ok(decoded
        .into_iter()
        .map(|(k, v)| {
            let v = if v.is_empty() {
                Value::Empty
            } else {
                Value::Text(v)
            };
            (k, v)
        })
        .collect())
}

/// Strict form rules that serde_urlencoded (lenient by design) does not enforce, so that the
/// filter never signs text that another parser would read differently.
fn validate_form(body: &[u8]) -> Result<(), Rejection> {
    if std::str::from_utf8(body).is_err() {
        return Err(malformed("form body is not UTF-8"));
    }
    for segment in body.split(|&b| b == b'&') {
        if segment.is_empty() {
            continue;
        }
        if !segment.contains(&b'=') {
            return Err(malformed("form pair without `=`"));
        }
        // A raw `;` separates pairs for some parsers (Python before 3.9.2 / CVE-2021-23336, Ruby
        // Rack before 3) and makes Go's url.ParseQuery drop the pair: `a=1;b=2` would be signed
        // as one value and read as another parameter set ("parameter cloaking"). Encoders send
        // `%3B`; a raw `;` is ambiguous, like a duplicate key.
        if segment.contains(&b';') {
            return Err(malformed("raw `;` in a form body"));
        }
        let mut i = 0;
        while let Some(&b) = segment.get(i) {
            if b == b'%' {
                let valid = matches!(
                    (segment.get(i + 1), segment.get(i + 2)),
                    (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit()
                );
                if !valid {
                    return Err(malformed("invalid percent-encoding"));
                }
                i += 3;
            } else {
                i += 1;
            }
        }
        for part in segment.splitn(2, |&b| b == b'=') {
            if percent_encoding::percent_decode(part)
                .decode_utf8()
                .is_err()
            {
                return Err(malformed("percent-encoded text is not UTF-8"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// JSON-like text near the fast path's subset: flat objects whose pieces are drawn from
    /// spellings the fast path must decline (escapes, decimals, exponents, leading zeros, raw
    /// control characters, nesting, trailing commas, bad literals, big integers...) as well as
    /// ones it takes.
    fn near_flat() -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec![
            r#""a""#,
            r#""b""#,
            r#""sim_id""#,
            r#""""#,
            r#""a\u0062""#,
            r#""\"""#,
            "\"\u{1}\"",
            r#""é""#,
            r#""A""#,
            "a",
            r#""a"#,
        ]);
        let value = prop::sample::select(vec![
            r#""x""#,
            r#""""#,
            r#""8986 0220""#,
            r#""a\nb""#,
            r#""\u00e9""#,
            "\"\t\"",
            "0",
            "-0",
            "12",
            "-7",
            "01",
            "1.5",
            "1e3",
            "-",
            "9007199254740991",
            "9007199254740992",
            "true",
            "false",
            "null",
            "nul",
            "tru",
            "[]",
            "{}",
            r#"{"n":1}"#,
            "[1,2]",
            r#""é""#,
            "NaN",
        ]);
        let ws = prop::sample::select(vec!["", " ", "\n", "\t", "\r", "\u{b}", "  "]);
        let member = (ws.clone(), key, ws.clone(), ws.clone(), value, ws.clone())
            .prop_map(|(a, k, b, c, v, d)| format!("{a}{k}{b}:{c}{v}{d}"));
        (
            ws.clone(),
            prop::collection::vec(member, 0..6),
            prop::sample::select(vec!["", ",", "}", " x", ",}"]),
            ws,
        )
            .prop_map(|(lead, members, tail, trail)| {
                format!("{lead}{{{}}}{tail}{trail}", members.join(","))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whenever the fast path answers, serde_json's full path answers the same pairs.
        #[test]
        fn flat_object_agrees_with_serde_json(text in near_flat()) {
            for value_types in [ValueTypes::Any, ValueTypes::Strings] {
                let opts = Md5Options { value_types, ..Md5Options::default() };
                if let Some(fast) = flat_object(&text, value_types == ValueTypes::Strings) {
                    prop_assert_eq!(Ok(fast), parse_json_serde(&text, &opts), "{}", text);
                }
            }
        }
    }

    #[test]
    fn string_stop_finds_the_first_stop_byte() {
        let naive = |b: &[u8], from: usize| {
            b.iter()
                .skip(from)
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .map(|p| p + from)
        };
        let mut text = b"abcdefghijklmnopqrstuvwxyz0123456789".to_vec();
        assert_eq!(string_stop(&text, 0), None);
        for stop in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
            for at in 0..text.len() {
                let saved = text[at];
                text[at] = stop;
                for from in 0..=at {
                    assert_eq!(
                        string_stop(&text, from),
                        naive(&text, from),
                        "{stop} at {at} from {from}"
                    );
                }
                // A second stop after the first never hides it (borrows only run upwards).
                if at + 1 < text.len() {
                    let next = text[at + 1];
                    text[at + 1] = 0x00;
                    assert_eq!(string_stop(&text, 0), Some(at));
                    text[at + 1] = next;
                }
                text[at] = saved;
            }
        }
        for high in [0x80u8, 0xa0, 0xff, 0x21, 0x7f] {
            assert_eq!(string_stop(&[high; 20], 0), None);
        }
    }

    /// The fast path takes what providers send (else the property above would prove nothing).
    #[test]
    fn flat_object_takes_provider_bodies() {
        let body =
            r#" {"sim_id":"89860220190123456789", "n" : 12,"x":"","ok":true,"z":null,"neg":-0} "#;
        let pairs = flat_object(body, false).unwrap();
        assert_eq!(pairs.len(), 6);
        assert_eq!(
            Ok(pairs),
            parse_json_serde(body, &opts(EmptyValues::Keep, NestedValues::Reject))
        );
        assert_eq!(flat_object("{}", false), Some(Vec::new()));
        assert!(flat_object(r#"{"a":"x"}"#, true).is_some());
        for declined in [r#"{"a":1}"#, r#"{"a":null}"#] {
            assert_eq!(flat_object(declined, true), None, "{declined}");
        }
        for declined in [
            r#"{"a":"\u0041"}"#,
            r#"{"a":1.0}"#,
            r#"{"a":01}"#,
            r#"{"a":{}}"#,
            r#"{"a":1,}"#,
            r#"{"a":1}x"#,
            r#"{"a":9007199254740992}"#,
            "{\"a\":\"\u{1}\"}",
            r#"["a"]"#,
        ] {
            assert_eq!(flat_object(declined, false), None, "{declined}");
        }
    }

    fn opts(empty: EmptyValues, nested: NestedValues) -> Md5Options {
        Md5Options {
            empty_values: empty,
            nested_values: nested,
            value_types: ValueTypes::Any,
        }
    }

    #[test]
    fn value_types_strings_rejects_other_json_types() {
        let strict = Md5Options::default();
        assert_eq!(strict.value_types, ValueTypes::Strings);
        let ok = Params::parse(MediaType::Json, br#"{"a":"false","b":"0","c":""}"#, &strict);
        assert!(ok.is_ok());
        for body in [
            &br#"{"a":false}"#[..],
            br#"{"a":true}"#,
            br#"{"a":0}"#,
            br#"{"a":1.5}"#,
            br#"{"a":null}"#,
        ] {
            let err = Params::parse(MediaType::Json, body, &strict).unwrap_err();
            assert_eq!(err.reason, Reason::MalformedBody, "{body:?}");
        }
        // Nested values stay governed by nested_values.
        let raw = Md5Options {
            nested_values: NestedValues::Raw,
            ..strict
        };
        assert!(Params::parse(MediaType::Json, br#"{"a":{"b":"c"}}"#, &raw).is_ok());
        // Forms have no types.
        assert!(Params::parse(MediaType::Form, b"a=0&b=false", &strict).is_ok());
    }

    #[test]
    fn numbers_every_runtime_reads_exactly() {
        for ok in [
            "0",
            "-0",
            "18",
            "-18",
            "9007199254740991",
            "-9007199254740991",
            "1.50",
            "1e3",
            "1E+3",
            "-1.5e-7",
            "0.1",
            "123456789012345",
            "1.23456789012345e300",
            "0.0",
        ] {
            assert_eq!(exact_number(ok), Ok(ok), "{ok}");
        }
        for bad in [
            "9007199254740992",
            "123456789012345678901234567890",
            "-9223372036854775809",
            "1e400",
            "-1e400",
            "1.234567890123456",
            "1e-320",
            "12345678901234567890.5",
        ] {
            assert!(exact_number(bad).is_err(), "{bad}");
        }
        assert!(Json::parse(br#"{"a":1e400}"#).is_err());
        assert!(Json::parse(br#"{"a":[1,{"b":123456789012345678901234567890}]}"#).is_err());
    }

    #[test]
    fn bom_nul_and_php_renamed_keys_are_rejected() {
        let o = Md5Options::default();
        for (media, body) in [
            (MediaType::Form, &b"\xEF\xBB\xBFa=1"[..]),
            (MediaType::Json, b"\xEF\xBB\xBF{\"a\":\"1\"}"),
            (MediaType::Form, b"a=x%00y"),
            (MediaType::Form, b"a+b=2"),
            (MediaType::Form, b"a.b=2"),
            (MediaType::Form, b"%20a=1"),
        ] {
            let err = Params::parse(media, body, &o).unwrap_err();
            assert_eq!(
                err.reason,
                Reason::MalformedBody,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(Json::parse(b"\xEF\xBB\xBF{}").is_err());
        assert!(Params::parse(MediaType::Form, b"a_b=2&c-d=x+y", &o).is_ok());
    }

    #[test]
    fn ambiguous_key_spellings_are_rejected() {
        let o = Md5Options::default();
        for body in [
            &br#"{"partner_code":"P1","PARTNER_CODE":"P2"}"#[..],
            br#"{"partner_code":"P1","Partner_Code":"P2"}"#,
            "{\"sim_id\":\"1\",\"\u{17f}im_id\":\"2\"}".as_bytes(),
            br#"{"a\u0000":"1"}"#,
        ] {
            let err = Params::parse(MediaType::Json, body, &o).unwrap_err();
            assert_eq!(
                err.reason,
                Reason::MalformedBody,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        for body in [
            &b"partner_code=P1&partner.code=P2"[..],
            b"partner_code=P1&partner+code=P2",
            b"partner_code=P1&partner%5Bcode=P2",
            b"a%5Bb%5D=1",
            b"a[]=1",
            b"partner_code=P1&%20partner_code=P2",
        ] {
            let err = Params::parse(MediaType::Form, body, &o).unwrap_err();
            assert_eq!(
                err.reason,
                Reason::MalformedBody,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(Params::parse(MediaType::Json, br#"{"a.b":"1","Sim":"2"}"#, &o).is_ok());
        let cube = Json::parse(br#"{"a":{"Partner":"1","partner":"2"}}"#).unwrap_err();
        assert_eq!(cube.reason, Reason::MalformedBody);
        assert!(Json::parse(br#"{"a":{"Partner":1},"partner":[1]}"#).is_ok());
    }

    fn signed(
        media: MediaType,
        body: &str,
        o: Md5Options,
    ) -> Result<Vec<(String, String)>, Rejection> {
        let p = Params::parse(media, body.as_bytes(), &o)?;
        Ok(p.signed(o.empty_values)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    fn json(body: &str) -> Result<Vec<(String, String)>, Rejection> {
        // The `value_types: any` rules (strings only is tested on its own).
        let any = Md5Options {
            value_types: ValueTypes::Any,
            ..Md5Options::default()
        };
        signed(MediaType::Json, body, any)
    }
    fn form(body: &str) -> Result<Vec<(String, String)>, Rejection> {
        signed(MediaType::Form, body, Md5Options::default())
    }
    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
    fn reason<T: fmt::Debug>(r: Result<T, Rejection>) -> Reason {
        r.unwrap_err().reason
    }

    #[test]
    fn media_types() {
        use MediaType::*;
        assert_eq!(media_type(b"application/json").unwrap(), Json);
        assert_eq!(
            media_type(b"Application/JSON; charset=UTF-8").unwrap(),
            Json
        );
        assert_eq!(
            media_type(b"application/json;charset=\"utf-8\"").unwrap(),
            Json
        );
        assert_eq!(
            media_type(b"application/x-www-form-urlencoded").unwrap(),
            Form
        );
        assert_eq!(
            media_type(b"application/x-www-form-urlencoded; charset=utf-8").unwrap(),
            Form
        );
        for bad in [
            &b"text/plain"[..],
            b"",
            b"application/json; charset=latin1",
            b"application/json; boundary=x",
            b"application/json; charset",
            b"application/jsonx",
            b"multipart/form-data",
            b"application/json\xff",
        ] {
            assert_eq!(
                media_type(bad).unwrap_err().reason,
                Reason::UnsupportedMediaType,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn json_values_rules() {
        let got = json(
            r#"{"s":"device status: 1234","n":18,"f":1.50,"e":1e3,"neg":-0,"t":true,"b":false,
                "z":null,"empty":"","u":"caf\u00e9 \ud83d\ude00","raw":"日本"}"#,
        )
        .unwrap();
        assert_eq!(
            got,
            kv(&[
                ("b", "false"),
                ("e", "1e3"),
                ("empty", ""),
                ("f", "1.50"),
                ("n", "18"),
                ("neg", "-0"),
                ("raw", "日本"),
                ("s", "device status: 1234"),
                ("t", "true"),
                ("u", "café 😀"),
                ("z", ""),
            ])
        );
    }

    #[test]
    fn big_integers_keep_their_digits_or_are_rejected() {
        let got = json(r#"{"id":9007199254740991}"#).unwrap();
        assert_eq!(got, kv(&[("id", "9007199254740991")]));
        // Beyond 2^53 - 1 Node, PHP and Go no longer read the value that was signed.
        assert!(json(r#"{"id":123456789012345678901234567890}"#).is_err());
    }

    #[test]
    fn keys_sort_bytewise() {
        // Upper case before lower case, shorter prefix first, UTF-8 byte order.
        let got = json(r#"{"b":"1","a_b":"2","aB":"3","a":"4","é":"5","Z":"6"}"#).unwrap();
        let keys: Vec<_> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["Z", "a", "aB", "a_b", "b", "é"]);
    }

    #[test]
    fn empty_values_skip_option() {
        let o = opts(EmptyValues::Skip, NestedValues::Reject);
        let got = signed(MediaType::Json, r#"{"a":"","b":null,"c":"x","d":0}"#, o).unwrap();
        assert_eq!(got, kv(&[("c", "x"), ("d", "0")]));
        let got = signed(MediaType::Form, "a=&c=x", o).unwrap();
        assert_eq!(got, kv(&[("c", "x")]));
    }

    #[test]
    fn nested_values() {
        assert_eq!(reason(json(r#"{"a":{"b":1}}"#)), Reason::MalformedBody);
        assert_eq!(reason(json(r#"{"a":[1,2]}"#)), Reason::MalformedBody);
        let o = opts(EmptyValues::Keep, NestedValues::Raw);
        let got = signed(MediaType::Json, r#"{"a": {"y":1, "x":[2, 3]} ,"b":"c"}"#, o).unwrap();
        assert_eq!(got, kv(&[("a", r#"{"y":1, "x":[2, 3]}"#), ("b", "c")]));
    }

    #[test]
    fn malformed_json() {
        for bad in [
            r#"[{"a":"b"}]"#,
            r#""a""#,
            "1",
            "null",
            r#"{"a":"b""#,
            r#"{"a":"b"} x"#,
            r#"{"a":"b"}{"c":"d"}"#,
            r#"{"a":}"#,
            r#"{'a':'b'}"#,
            "{}",
            "",
            "   ",
            r#"{"a":"b","a":"c"}"#,
            r#"{"a":"b","a":"b"}"#,
            r#"{"":"x"}"#,
            r#"{"a":"\ud800"}"#,
        ] {
            assert_eq!(reason(json(bad)), Reason::MalformedBody, "{bad}");
        }
        // Invalid UTF-8 inside a string.
        let p = Params::parse(MediaType::Json, b"{\"a\":\"\xff\"}", &Md5Options::default());
        assert_eq!(reason(p), Reason::MalformedBody);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        let o = opts(EmptyValues::Keep, NestedValues::Raw);
        assert!(
            matches!(signed(MediaType::Json, &deep, o), Err(r) if r.reason == Reason::MalformedBody)
        );
        assert!(matches!(json(&deep), Err(r) if r.reason == Reason::MalformedBody));
        // At the limit: accepted; strings with brackets do not count.
        let ok = format!(
            "{{\"a\":{}\"[[[{{\"{}}}",
            "[".repeat(MAX_NESTED_DEPTH),
            "]".repeat(MAX_NESTED_DEPTH)
        );
        assert!(signed(MediaType::Json, &ok, o).is_ok(), "{ok}");
        let over = format!(
            "{{\"a\":{}{}}}",
            "[".repeat(MAX_NESTED_DEPTH + 1),
            "]".repeat(MAX_NESTED_DEPTH + 1)
        );
        assert!(signed(MediaType::Json, &over, o).is_err());
    }

    #[test]
    fn form_values_rules() {
        let got = form(
            "text_message=device+status%3A+1234&sim_id=8986&e=&uni=%E6%97%A5%E6%9C%AC&raw=日本",
        )
        .unwrap();
        assert_eq!(
            got,
            kv(&[
                ("e", ""),
                ("raw", "日本"),
                ("sim_id", "8986"),
                ("text_message", "device status: 1234"),
                ("uni", "日本"),
            ])
        );
        // Empty segments are ignored, as every mainstream parser does.
        assert_eq!(form("&a=1&&b=2&").unwrap(), kv(&[("a", "1"), ("b", "2")]));
        // `=` inside a value is kept.
        assert_eq!(form("a=x%3Dy=z").unwrap(), kv(&[("a", "x=y=z")]));
        // An encoded `;` is a plain character (only a raw `;` is ambiguous).
        assert_eq!(form("a=1%3Bb%3D2").unwrap(), kv(&[("a", "1;b=2")]));
    }

    #[test]
    fn malformed_form() {
        for bad in [
            "a=1&a=2", "a=1&a=1", "a", "a=1&b", "a=%zz", "a=%4", "a=%", "a=%ff", "a=%C3%28", "=x",
            "", "&&",
        ] {
            assert_eq!(reason(form(bad)), Reason::MalformedBody, "{bad}");
        }
        // A raw `;` (a pair separator for some parsers) is ambiguous.
        for bad in ["a=1;b=2", "a=1&b=x;y", "a;b=1", ";", "a=1&;", "a=1&b=2;"] {
            assert_eq!(reason(form(bad)), Reason::MalformedBody, "{bad}");
        }
        let p = Params::parse(MediaType::Form, b"a=\xff", &Md5Options::default());
        assert_eq!(reason(p), Reason::MalformedBody);
    }

    #[test]
    fn content_type_confusion() {
        assert_eq!(reason(form(r#"{"a":"b"}"#)), Reason::UnsupportedMediaType);
        assert_eq!(reason(form(r#" [1]"#)), Reason::UnsupportedMediaType);
        assert_eq!(reason(json("a=1&b=2")), Reason::MalformedBody);
    }

    #[test]
    fn json_tree_sorts_every_level_and_keeps_literals() {
        let t = Json::parse(
            br#"{"b":[{"z":1,"a":2.50}],"a":{"y":"\u00e9","x":null,"w":true},"pc":"P1"}"#,
        )
        .unwrap();
        let Json::Object(m) = &t else { panic!() };
        let keys: Vec<_> = m.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["a", "b", "pc"]);
        let Json::Object(a) = &m[0].1 else { panic!() };
        assert_eq!(a[0], (Cow::Borrowed("w"), Json::Bool(true)));
        assert_eq!(a[1], (Cow::Borrowed("x"), Json::Null));
        assert_eq!(
            a[2],
            (Cow::Borrowed("y"), Json::String(Cow::Owned("é".into())))
        );
        let Json::Array(b) = &m[1].1 else { panic!() };
        assert_eq!(
            b[0],
            Json::Object(vec![
                (Cow::Borrowed("a"), Json::Number("2.50")),
                (Cow::Borrowed("z"), Json::Number("1"))
            ])
        );
        assert_eq!(t.top_level_str("pc"), Some("P1"));
        assert_eq!(t.top_level_str("a"), None);
        assert_eq!(t.top_level_str("zz"), None);
    }

    #[test]
    fn json_tree_rejects_ambiguity_and_depth() {
        for bad in [
            &br#"{"a":1,"a":2}"#[..],
            br#"{"a":{"b":1,"b":1}}"#,
            br#"{"a":[{"b":1,"b":2}]}"#,
            br#"[1]"#,
            b"",
            b"{\"a\":\"\xff\"}",
            br#"{"a":1"#,
        ] {
            assert_eq!(
                Json::parse(bad).unwrap_err().reason,
                Reason::MalformedBody,
                "{bad:?}"
            );
        }
        let ok = format!(
            "{{\"a\":{}{}}}",
            "[".repeat(MAX_NESTED_DEPTH - 1),
            "]".repeat(MAX_NESTED_DEPTH - 1)
        );
        assert!(Json::parse(ok.as_bytes()).is_ok());
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(
            matches!(Json::parse(deep.as_bytes()), Err(r) if r.reason == Reason::MalformedBody)
        );
    }

    #[test]
    fn get_finds_values() {
        let p = Params::parse(
            MediaType::Json,
            br#"{"b":"2","a":"1"}"#,
            &Md5Options::default(),
        )
        .unwrap();
        assert_eq!(p.get("a").map(Value::as_str), Some("1"));
        assert_eq!(p.get("c"), None);
        assert_eq!(p.pairs().len(), 2);
    }
}
