//! The decision: request head (+ body) -> accept or reject. Pure Rust, no proxy-wasm: the filter,
//! the CLI and the tests all call these two functions.
//!
//! 1. [`Config::check_head`] runs when the request headers arrive: method, signature header
//!    present and single, content type, `Content-Length` against the limit.
//! 2. [`Config::verify_body`] runs once the whole body is buffered: size, parse, canonicalise,
//!    constant-time compare against every key.

use crate::body::{media_type, MediaType, Params};
use crate::canonical::md5_prefix;
use crate::config::Config;
use crate::scheme::md5::Md5Signer;
use crate::verdict::{Accepted, Reason, Rejection, Scheme};

/// Name of the legacy signature header.
pub const MD5_HEADER: &str = "x-lf-md5";
/// Header the filter sets on verified requests (and strips from every client request).
pub const VERIFIED_HEADER: &str = "x-lf-verified";

/// A request header as the filter saw it: absent, present once, or repeated (ambiguous).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderValue<'a> {
    #[default]
    Absent,
    One(&'a [u8]),
    Many,
}

impl<'a> HeaderValue<'a> {
    /// Fold one more occurrence of the header into this value.
    pub fn push(&mut self, value: &'a [u8]) {
        *self = match self {
            HeaderValue::Absent => HeaderValue::One(value),
            _ => HeaderValue::Many,
        };
    }
}

/// What the decision needs from the request headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHead<'a> {
    pub method: &'a [u8],
    pub content_type: HeaderValue<'a>,
    pub content_length: HeaderValue<'a>,
    pub md5_signature: HeaderValue<'a>,
}

impl<'a> RequestHead<'a> {
    /// Build from (lower-case name, value) header pairs, e.g. proxy-wasm's header map.
    pub fn from_pairs<I>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        let mut head = RequestHead::default();
        for (name, value) in pairs {
            match name {
                ":method" => head.method = value,
                "content-type" => head.content_type.push(value),
                "content-length" => head.content_length.push(value),
                MD5_HEADER => head.md5_signature.push(value),
                _ => {}
            }
        }
        head
    }
}

/// State carried from the headers to the end of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub route: usize,
    pub media: MediaType,
    signature: Vec<u8>,
}

impl Config {
    /// Checks that need only the headers. `route` is an index into `self.routes`.
    pub fn check_head(&self, route: usize, head: &RequestHead<'_>) -> Result<Pending, Rejection> {
        let r = self
            .routes
            .get(route)
            .ok_or(Rejection::new(Reason::MalformedBody, "unknown route"))?;
        if !r.allows_method(head.method) {
            return Err(Rejection::new(
                Reason::MethodNotAllowed,
                "method not allowed on route",
            ));
        }
        let signature = match head.md5_signature {
            HeaderValue::Absent => {
                return Err(Rejection::new(
                    Reason::MissingSignature,
                    "no x-lf-md5 header",
                ))
            }
            HeaderValue::Many => {
                return Err(Rejection::new(
                    Reason::InvalidSignature,
                    "repeated x-lf-md5 header",
                ))
            }
            HeaderValue::One(v) => v.to_vec(),
        };
        let media = match head.content_type {
            HeaderValue::One(ct) => media_type(ct)?,
            HeaderValue::Absent => {
                return Err(Rejection::new(
                    Reason::UnsupportedMediaType,
                    "no content-type",
                ))
            }
            HeaderValue::Many => {
                return Err(Rejection::new(
                    Reason::UnsupportedMediaType,
                    "repeated content-type",
                ))
            }
        };
        match head.content_length {
            HeaderValue::One(len) => match std::str::from_utf8(len)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
            {
                Some(n) if n > self.max_body_bytes as u64 => {
                    return Err(Rejection::new(
                        Reason::BodyTooLarge,
                        "content-length above max_body_bytes",
                    ))
                }
                Some(_) => {}
                None => return Err(Rejection::new(Reason::MalformedBody, "bad content-length")),
            },
            HeaderValue::Many => {
                return Err(Rejection::new(
                    Reason::MalformedBody,
                    "repeated content-length",
                ))
            }
            HeaderValue::Absent => {}
        }
        Ok(Pending {
            route,
            media,
            signature,
        })
    }

    /// Verify the complete body. Returns the scheme and the id of the matching key.
    pub fn verify_body(&self, pending: &Pending, body: &[u8]) -> Result<Accepted<'_>, Rejection> {
        if body.len() > self.max_body_bytes {
            return Err(Rejection::new(
                Reason::BodyTooLarge,
                "body above max_body_bytes",
            ));
        }
        let params = Params::parse(pending.media, body, &self.md5)?;
        let mut signer = Md5Signer::new();
        md5_prefix(&params, self.md5.empty_values, |b| signer.update(b));
        let index = signer.verify(&pending.signature, &self.keys)?;
        let key = self.keys.get(index).ok_or(Rejection::new(
            Reason::InvalidSignature,
            "signature mismatch",
        ))?;
        Ok(Accepted {
            scheme: Scheme::Md5,
            key_id: &key.id,
        })
    }
}

/// Sign a body with one secret under the given options (CLI and tests): the `x-lf-md5` value.
pub fn sign_md5(
    media: MediaType,
    body: &[u8],
    opts: &crate::config::Md5Options,
    secret: &[u8],
) -> Result<String, Rejection> {
    let params = Params::parse(media, body, opts)?;
    let mut signer = Md5Signer::new();
    md5_prefix(&params, opts.empty_values, |b| signer.update(b));
    Ok(signer.header_with_secret(secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Md5Options;

    const CONFIG: &str = r#"{
        "keys": [{"id": "old", "secret": "first-secret"}, {"id": "new", "secret": "second=secret&"}],
        "routes": [{"name": "lf", "path_prefix": "/linksfield/"}],
        "max_body_bytes": 256
    }"#;
    const BODY: &[u8] = br#"{"partner_code":"P123456","sim_id":"89860220190123456789","imsi":"4230001234567","message_type":"Binary","text_message":"device status: 1234","received_at":"1642385160000"}"#;
    const FORM: &[u8] = b"partner_code=P123456&text_message=device+status%3A+1234";

    fn config() -> Config {
        Config::from_json(CONFIG.as_bytes(), |_| None).unwrap()
    }

    fn head<'a>(ct: &'a [u8], sig: &'a [u8]) -> RequestHead<'a> {
        RequestHead::from_pairs([
            (":method", &b"POST"[..]),
            ("content-type", ct),
            (MD5_HEADER, sig),
        ])
    }

    fn decide(c: &Config, head: &RequestHead<'_>, body: &[u8]) -> Result<String, Reason> {
        let p = c.check_head(0, head).map_err(|r| r.reason)?;
        c.verify_body(&p, body)
            .map(|a| a.header_value())
            .map_err(|r| r.reason)
    }

    fn sig(body: &[u8], media: MediaType, secret: &str) -> String {
        sign_md5(media, body, &Md5Options::default(), secret.as_bytes()).unwrap()
    }

    /// Independent vector (Python hashlib) for BODY signed with "first-secret".
    #[test]
    fn genuine_json_with_python_vector() {
        let c = config();
        let s = sig(BODY, MediaType::Json, "first-secret");
        assert_eq!(s, "MzQyMjUyYTExMjUxZTlhZjY1ZjY4YTQ3MDAyNzU1YTA=");
        assert_eq!(
            decide(&c, &head(b"application/json", s.as_bytes()), BODY),
            Ok("md5; key=old".into())
        );
    }

    #[test]
    fn genuine_form_and_second_key() {
        let c = config();
        let s = sig(FORM, MediaType::Form, "second=secret&");
        let h = head(
            b"application/x-www-form-urlencoded; charset=UTF-8",
            s.as_bytes(),
        );
        assert_eq!(decide(&c, &h, FORM), Ok("md5; key=new".into()));
    }

    #[test]
    fn every_rejection() {
        let c = config();
        let s = sig(BODY, MediaType::Json, "first-secret");
        let good = head(b"application/json", s.as_bytes());
        let mut tampered = BODY.to_vec();
        tampered[20] ^= 1;
        assert_eq!(decide(&c, &good, &tampered), Err(Reason::InvalidSignature));
        assert_eq!(
            decide(&c, &head(b"application/json", b"AAAA"), BODY),
            Err(Reason::InvalidSignature)
        );
        assert_eq!(
            decide(&c, &head(b"text/plain", s.as_bytes()), BODY),
            Err(Reason::UnsupportedMediaType)
        );
        assert_eq!(
            decide(&c, &head(b"application/json", s.as_bytes()), b"[1]"),
            Err(Reason::MalformedBody)
        );
        assert_eq!(
            decide(&c, &head(b"application/json", s.as_bytes()), b""),
            Err(Reason::MalformedBody)
        );

        let no_sig = RequestHead::from_pairs([
            (":method", &b"POST"[..]),
            ("content-type", b"application/json"),
        ]);
        assert_eq!(decide(&c, &no_sig, BODY), Err(Reason::MissingSignature));
        let two_sigs = RequestHead::from_pairs([
            (":method", &b"POST"[..]),
            ("content-type", b"application/json"),
            (MD5_HEADER, s.as_bytes()),
            (MD5_HEADER, s.as_bytes()),
        ]);
        assert_eq!(decide(&c, &two_sigs, BODY), Err(Reason::InvalidSignature));
        let get = RequestHead {
            method: b"GET",
            ..good
        };
        assert_eq!(decide(&c, &get, BODY), Err(Reason::MethodNotAllowed));
        let big = RequestHead {
            content_length: HeaderValue::One(b"257"),
            ..good
        };
        assert_eq!(decide(&c, &big, BODY), Err(Reason::BodyTooLarge));
        let fits = RequestHead {
            content_length: HeaderValue::One(b"256"),
            ..good
        };
        assert!(c.check_head(0, &fits).is_ok());
        let p = c.check_head(0, &good).unwrap();
        assert_eq!(
            c.verify_body(&p, &[b' '; 257]).unwrap_err().reason,
            Reason::BodyTooLarge
        );
    }

    #[test]
    fn order_of_head_checks() {
        let c = config();
        // Wrong method wins over everything; a missing signature over a bad content type.
        let h = RequestHead::from_pairs([(":method", &b"GET"[..])]);
        assert_eq!(
            c.check_head(0, &h).unwrap_err().reason,
            Reason::MethodNotAllowed
        );
        let h =
            RequestHead::from_pairs([(":method", &b"POST"[..]), ("content-type", b"text/plain")]);
        assert_eq!(
            c.check_head(0, &h).unwrap_err().reason,
            Reason::MissingSignature
        );
        assert!(c.check_head(7, &h).is_err());
    }
}
