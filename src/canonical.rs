//! Params -> the exact bytes each scheme signs. One function per scheme; the schemes and the CLI
//! (`explain`) feed them into a hasher or a buffer, so there is one implementation of each rule.

use crate::body::{EmptyValues, Json, Params};
use crate::scheme::md5::hex_digit;

/// The legacy (`x-lf-md5`) signed text WITHOUT the secret:
/// `key1=value1&key2=value2&...&keyN=valueN&` (sorted by key, values as plain text), written
/// piece by piece into `out` (no intermediate string). The scheme then appends the secret, so the
/// whole signed text is `key1=value1&...&keyN=valueN&SECRET`.
pub fn md5_prefix(params: &Params<'_>, empty: EmptyValues, mut out: impl FnMut(&[u8])) {
    for (k, v) in params.signed(empty) {
        out(k.as_bytes());
        out(b"=");
        out(v.as_bytes());
        out(b"&");
    }
}

/// The Cube body text: compact JSON (no white space), object keys sorted at every level
/// (byte-wise), arrays in order, numbers as their literal text, strings re-escaped minimally
/// (`"`, `\` and control characters; everything else, `/` and non-ASCII included, as UTF-8).
pub fn cube_json(value: &Json<'_>, out: &mut impl FnMut(&[u8])) {
    match value {
        Json::Null => out(b"null"),
        Json::Bool(true) => out(b"true"),
        Json::Bool(false) => out(b"false"),
        Json::Number(n) => out(n.as_bytes()),
        Json::String(s) => json_string(s, out),
        Json::Array(items) => {
            out(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out(b",");
                }
                cube_json(item, out);
            }
            out(b"]");
        }
        Json::Object(members) => {
            out(b"{");
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out(b",");
                }
                json_string(k, out);
                out(b":");
                cube_json(v, out);
            }
            out(b"}");
        }
    }
}

fn json_string(s: &str, out: &mut impl FnMut(&[u8])) {
    out(b"\"");
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out(bytes.get(start..i).unwrap_or_default());
        if escape.is_empty() {
            out(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                hex_digit(b >> 4),
                hex_digit(b & 0x0f),
            ]);
        } else {
            out(escape);
        }
        start = i + 1;
    }
    out(bytes.get(start..).unwrap_or_default());
    out(b"\"");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Md5Options;
    use crate::body::MediaType;

    fn prefix(media: MediaType, body: &str, empty: EmptyValues) -> String {
        let o = Md5Options {
            empty_values: empty,
            value_types: crate::body::ValueTypes::Any,
            ..Md5Options::default()
        };
        let p = Params::parse(media, body.as_bytes(), &o).unwrap();
        let mut s = Vec::new();
        md5_prefix(&p, empty, |b| s.extend_from_slice(b));
        String::from_utf8(s).unwrap()
    }

    #[test]
    fn provider_sample_layout() {
        // The provider's sample inputs, as the reference prints the dataToSign (minus the secret).
        let body = r#"{"sim_id":"89000000000001","imsi":"8900000000000010","partner_code":"P002671",
                       "text_message":"device status: 1234","received_at":"2022-01-19T201101"}"#;
        assert_eq!(
            prefix(MediaType::Json, body, EmptyValues::Keep),
            "imsi=8900000000000010&partner_code=P002671&received_at=2022-01-19T201101&\
             sim_id=89000000000001&text_message=device status: 1234&"
        );
    }

    #[test]
    fn form_and_json_give_the_same_text() {
        let j = prefix(
            MediaType::Json,
            r#"{"b":"x y","a":"1&2"}"#,
            EmptyValues::Keep,
        );
        let f = prefix(MediaType::Form, "b=x+y&a=1%262", EmptyValues::Keep);
        assert_eq!(j, "a=1&2&b=x y&");
        assert_eq!(j, f);
    }

    fn cube(body: &str) -> String {
        let t = Json::parse(body.as_bytes()).unwrap();
        let mut s = Vec::new();
        cube_json(&t, &mut |b: &[u8]| s.extend_from_slice(b));
        String::from_utf8(s).unwrap()
    }

    #[test]
    fn cube_provider_example() {
        assert_eq!(
            cube(r#"{"name": "liguoli","age": 18}"#),
            r#"{"age":18,"name":"liguoli"}"#
        );
    }

    #[test]
    fn cube_rules() {
        assert_eq!(
            cube(
                r#" { "b" : [ 3, {"d":1,"c":[true,false,null]} ], "a" : { "z":"x", "y":{} }, "e":[] } "#
            ),
            r#"{"a":{"y":{},"z":"x"},"b":[3,{"c":[true,false,null],"d":1}],"e":[]}"#
        );
        // Numbers keep their literal text: floats, exponents, big integers, negative zero.
        assert_eq!(
            cube(r#"{"f":1.50,"e":1E3,"big":9007199254740991,"n":-0,"g":-1.5e-7}"#),
            r#"{"big":9007199254740991,"e":1E3,"f":1.50,"g":-1.5e-7,"n":-0}"#
        );
        // Unicode escapes are decoded and written as UTF-8; `/` is not escaped; controls are.
        assert_eq!(
            cube(r#"{"u":"caf\u00e9 \ud83d\ude00 \/ \"q\" \\ \n\t\u0001\u001f\u007f"}"#),
            "{\"u\":\"café 😀 / \\\"q\\\" \\\\ \\n\\t\\u0001\\u001f\u{7f}\"}"
        );
        // Keys sort byte-wise (UTF-8): upper case first, then lower, then non-ASCII.
        assert_eq!(
            cube(r#"{"é":1,"c":2,"B":3,"a":4}"#),
            r#"{"B":3,"a":4,"c":2,"é":1}"#
        );
    }

    #[test]
    fn empty_values() {
        assert_eq!(
            prefix(MediaType::Json, r#"{"a":"","b":"1"}"#, EmptyValues::Keep),
            "a=&b=1&"
        );
        assert_eq!(
            prefix(MediaType::Json, r#"{"a":"","b":"1"}"#, EmptyValues::Skip),
            "b=1&"
        );
    }
}
