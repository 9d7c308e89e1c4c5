//! Cube scheme: `x-lf-signature: {keyId}/{base64(HMAC-SHA1(key, signed_text))}` where
//! `signed_text = "{version}:{algo}:{timestamp}" || cube_json(body)` (see
//! [`crate::canonical::cube_json`]). The HMAC key is the ASCII bytes of the key value; the key
//! is selected by id. `x-lf-algo` must be `HMAC-SHA1` (any case); the header values go into the
//! signed text exactly as received.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::verdict::{Reason, Rejection};

type HmacSha1 = Hmac<Sha1>;

/// The only algorithm the provider defines.
pub const ALGORITHM: &str = "HMAC-SHA1";
/// Length of the base64 part of a well-formed signature (20 bytes, padded).
pub const MAC_B64_LEN: usize = 28;

const fn invalid(detail: &'static str) -> Rejection {
    Rejection::new(Reason::InvalidSignature, detail)
}

/// A parsed `x-lf-signature` value: the key id and the 20 MAC bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CubeSignature {
    pub key_id: String,
    pub mac: [u8; 20],
}

/// Parse `{keyId}/{base64}` (surrounding white space ignored). The key id is everything before
/// the FIRST `/` (base64 itself may contain `/`).
pub fn parse_signature(header: &[u8]) -> Result<CubeSignature, Rejection> {
    let text =
        std::str::from_utf8(header.trim_ascii()).map_err(|_| invalid("signature is not ASCII"))?;
    let (key_id, b64) = text
        .split_once('/')
        .ok_or(invalid("signature has no key id"))?;
    if key_id.is_empty() {
        return Err(invalid("signature has no key id"));
    }
    if b64.len() != MAC_B64_LEN {
        return Err(invalid("wrong signature length"));
    }
    let mut buf = [0u8; 21];
    match STANDARD.decode_slice(b64, &mut buf) {
        Ok(20) => {
            let mut mac = [0u8; 20];
            mac.copy_from_slice(buf.get(..20).unwrap_or(&[0u8; 20]));
            Ok(CubeSignature {
                key_id: key_id.to_string(),
                mac,
            })
        }
        Ok(_) => Err(invalid("wrong signature length")),
        Err(_) => Err(invalid("signature is not base64")),
    }
}

/// Check `x-lf-algo` and `x-lf-timestamp`, and build the header part of the signed text,
/// `{version}:{algo}:{timestamp}`. Returns it with the timestamp in epoch milliseconds.
pub fn signed_prefix(
    version: &[u8],
    algo: &[u8],
    timestamp: &[u8],
) -> Result<(Vec<u8>, u64), Rejection> {
    if !algo.eq_ignore_ascii_case(ALGORITHM.as_bytes()) {
        return Err(invalid("unsupported x-lf-algo"));
    }
    if version.is_empty() || version.iter().any(|b| !b.is_ascii_graphic() || *b == b':') {
        return Err(invalid("bad x-lf-notification-version"));
    }
    if timestamp.is_empty() || timestamp.len() > 19 || !timestamp.iter().all(u8::is_ascii_digit) {
        return Err(invalid("bad x-lf-timestamp"));
    }
    let ms = std::str::from_utf8(timestamp)
        .ok()
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or(invalid("bad x-lf-timestamp"))?;
    let mut prefix = Vec::with_capacity(version.len() + algo.len() + timestamp.len() + 2);
    prefix.extend_from_slice(version);
    prefix.push(b':');
    prefix.extend_from_slice(algo);
    prefix.push(b':');
    prefix.extend_from_slice(timestamp);
    Ok((prefix, ms))
}

/// An HMAC-SHA1 computation over the signed text, fed piece by piece.
pub struct CubeSigner {
    mac: HmacSha1,
}

impl CubeSigner {
    pub fn new(key: &[u8]) -> Self {
        // HMAC accepts keys of any length; the fallback is unreachable but keeps this panic-free.
        let mac = HmacSha1::new_from_slice(key)
            .unwrap_or_else(|_| <HmacSha1 as hmac::digest::KeyInit>::new(&Default::default()));
        CubeSigner { mac }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.mac.update(bytes);
    }

    pub fn finish(self) -> [u8; 20] {
        self.mac.finalize().into_bytes().into()
    }

    /// Constant-time comparison with the provided MAC.
    pub fn verify(self, provided: &[u8; 20]) -> Result<(), Rejection> {
        if bool::from(self.finish().ct_eq(provided)) {
            Ok(())
        } else {
            Err(invalid("signature mismatch"))
        }
    }
}

/// The header value for a key id and a finished MAC (signing: CLI and tests).
pub fn header_value(key_id: &str, mac: &[u8; 20]) -> String {
    format!("{key_id}/{}", STANDARD.encode(mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "3QY0I6jA6jOfeIQbOde3CG2DeOllV1zufpFR393my78h3tCn7P1IfyUIhV3cS8ks";

    /// The provider's worked example (reference section 2).
    #[test]
    fn provider_worked_example() {
        let (prefix, ms) = signed_prefix(b"1.0", b"HMAC-SHA1", b"12345648444").unwrap();
        assert_eq!(prefix, b"1.0:HMAC-SHA1:12345648444");
        assert_eq!(ms, 12_345_648_444);
        let mut s = CubeSigner::new(KEY.as_bytes());
        s.update(&prefix);
        s.update(br#"{"age":18,"name":"liguoli"}"#);
        let mac = s.finish();
        assert_eq!(
            header_value("Ou8a5lyzPjN86ikmLeFC", &mac),
            "Ou8a5lyzPjN86ikmLeFC/pnWR3hcrEXQWV8S+RY0DMjEN9ec="
        );
        let sig = parse_signature(b" Ou8a5lyzPjN86ikmLeFC/pnWR3hcrEXQWV8S+RY0DMjEN9ec= ").unwrap();
        assert_eq!(sig.key_id, "Ou8a5lyzPjN86ikmLeFC");
        assert_eq!(sig.mac, mac);
    }

    #[test]
    fn algo_is_case_insensitive_and_exclusive() {
        assert!(signed_prefix(b"1.0", b"hmac-sha1", b"1").is_ok());
        for algo in [&b"HMAC-SHA256"[..], b"", b"HMAC-SHA1 ", b"MD5"] {
            assert_eq!(
                signed_prefix(b"1.0", algo, b"1").unwrap_err().detail,
                "unsupported x-lf-algo"
            );
        }
        for ts in [
            &b""[..],
            b"-1",
            b"1.5",
            b"12345678901234567890",
            b"99999999999999999999",
        ] {
            assert!(signed_prefix(b"1.0", b"HMAC-SHA1", ts).is_err(), "{ts:?}");
        }
        assert!(signed_prefix(b"", b"HMAC-SHA1", b"1").is_err());
        assert!(signed_prefix(b"1:0", b"HMAC-SHA1", b"1").is_err());
    }

    #[test]
    fn malformed_signatures() {
        let good = "k/pnWR3hcrEXQWV8S+RY0DMjEN9ec=";
        assert!(parse_signature(good.as_bytes()).is_ok());
        // The key id ends at the first slash; base64 may contain slashes.
        let with_slash = parse_signature(b"k/a/cdefghijklmnopqrstuvwxyz0=").unwrap();
        assert_eq!(with_slash.key_id, "k");
        for bad in [
            "",
            "/pnWR3hcrEXQWV8S+RY0DMjEN9ec=",
            "pnWR3hcrEXQWV8S+RY0DMjEN9ec=",
            "k/pnWR3hcrEXQWV8S+RY0DMjEN9e",
            "k/pnWR3hcrEXQWV8S+RY0DMjEN9ec=A",
            "k/pnWR3hcrEXQWV8S+RY0DMjEN9e!=",
            "k/pnWR3hcrEXQWV8S+RY0DMjEN9ed=",
        ] {
            assert_eq!(
                parse_signature(bad.as_bytes()).unwrap_err().reason,
                Reason::InvalidSignature,
                "{bad}"
            );
        }
    }
}
