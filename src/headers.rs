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

#[cfg(test)]
mod tests {
    use super::*;

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
