//! Request headers the filter removes from every request it sees, on every route (exempt and
//! unprotected ones too), before anything else reads the request.
//!
//! Names are compared as a CGI-style server reads them: ASCII case-insensitively with `_` read as
//! `-` (wsgiref, gunicorn < 22 and PHP-FPM fold `x_lf_verified` into `HTTP_X_LF_VERIFIED`).
//! Envoy lower-cases names already; the shipped configs also drop every header with an
//! underscore (`headers_with_underscores_action: DROP_HEADER`).

use crate::verdict::VERIFIED_HEADER;

/// Headers that rewrite the path or the method a backend acts on (IIS URL Rewrite, Symfony,
/// Laravel, Express `method-override`, ASP.NET, Spring `ForwardedHeaderFilter`, Werkzeug
/// `ProxyFix`): a verified request must not be re-routed by them, and an unverified one must not
/// reach a protected handler through them.
pub const REWRITE_HEADERS: [&str; 10] = [
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-forwarded-prefix",
    "x-original-uri",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-original-method",
];

fn fold(b: u8) -> u8 {
    match b {
        b'_' => b'-',
        other => other.to_ascii_lowercase(),
    }
}

/// `name` is a spelling of `canonical` (lower-case, `-`-separated).
fn same_name(name: &str, canonical: &str) -> bool {
    name.len() == canonical.len()
        && name
            .bytes()
            .zip(canonical.bytes())
            .all(|(a, b)| fold(a) == b)
}

/// Whether a client's request header must be removed: any spelling of `x-lf-verified` (the
/// filter's own verdict) or of a path/method rewrite header.
pub fn must_strip(name: &str) -> bool {
    if !name.starts_with(['x', 'X']) {
        return false;
    }
    same_name(name, VERIFIED_HEADER) || REWRITE_HEADERS.iter().any(|h| same_name(name, h))
}

/// Decode a proxy-wasm serialized header map (`proxy_get_header_map_pairs`) without copying:
/// a little-endian `u32` count, then a `u32` name size and a `u32` value size per pair, then each
/// name and value followed by a NUL. `None` if the bytes do not follow that layout or a name is
/// not UTF-8 (the glue then fails closed, as for a failed host call).
pub fn decode_map(bytes: &[u8]) -> Option<Vec<(&str, &[u8])>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let word = |at: usize| -> Option<usize> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(raw)).ok()
    };
    let count = word(0)?;
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    let mut map = Vec::with_capacity(count.min(bytes.len() / 10));
    let mut take = |len: usize| -> Option<&[u8]> {
        let end = data.checked_add(len)?;
        let field = bytes.get(data..end)?;
        data = end.checked_add(1)?; // the NUL after each field
        Some(field)
    };
    for n in 0..count {
        let sizes = n.checked_mul(8)?.checked_add(4)?;
        let (name_len, value_len) = (word(sizes)?, word(sizes.checked_add(4)?)?);
        let name = std::str::from_utf8(take(name_len)?).ok()?;
        map.push((name, take(value_len)?));
    }
    Some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout Envoy writes (and the proxy-wasm SDK's own serializer).
    fn encode(pairs: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = u32::try_from(pairs.len()).unwrap().to_le_bytes().to_vec();
        for (k, v) in pairs {
            out.extend(u32::try_from(k.len()).unwrap().to_le_bytes());
            out.extend(u32::try_from(v.len()).unwrap().to_le_bytes());
        }
        for (k, v) in pairs {
            out.extend(k.as_bytes());
            out.push(0);
            out.extend(*v);
            out.push(0);
        }
        out
    }

    #[test]
    fn decodes_the_host_map_and_rejects_malformed_ones() {
        let pairs: Vec<(&str, &[u8])> = vec![
            (":path", b"/lf/a"),
            ("x_lf_verified", b""),
            ("x-lf-md5", b"\x00\xffbin"),
        ];
        let bytes = encode(&pairs);
        assert_eq!(decode_map(&bytes), Some(pairs));
        assert_eq!(decode_map(&[]), Some(Vec::new()));
        assert_eq!(decode_map(&encode(&[])), Some(Vec::new()));
        // Every truncation fails, never reads past the end.
        for cut in 1..bytes.len() - 1 {
            assert_eq!(decode_map(bytes.get(..cut).unwrap()), None, "cut at {cut}");
        }
        // A count larger than the data, a non-UTF-8 name.
        assert_eq!(decode_map(&[0xff, 0xff, 0xff, 0xff]), None);
        let mut bad = encode(&[("n", b"v")]);
        let name_at = 4 + 8;
        assert_eq!(bad.get(name_at), Some(&b'n'));
        bad[name_at] = 0xff;
        assert_eq!(decode_map(&bad), None);
    }

    #[test]
    fn strips_every_spelling() {
        for name in [
            "x-lf-verified",
            "x_lf_verified",
            "X-LF_Verified",
            "x-original-url",
            "X_Original_URL",
            "x-http-method-override",
            "x_forwarded_prefix",
            "x-rewrite-url",
        ] {
            assert!(must_strip(name), "{name}");
        }
        for name in [
            "x-lf-md5",
            "x-lf-verified2",
            "content-type",
            ":path",
            "x-lf-verifie",
            "",
        ] {
            assert!(!must_strip(name), "{name}");
        }
    }
}
