//! Legacy CSSS scheme: `x-lf-md5: base64(lowercase_hex(MD5(prefix || secret)))`.
//!
//! The header carries base64 of the 32-character LOWERCASE hex digest (not of the 16 raw digest
//! bytes), so a well-formed header is 44 characters. Verification decodes the header to exactly
//! 32 bytes, then compares them in constant time with the hex digest of every configured key
//! (all keys are always computed: no early exit that would reveal which key matched).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use md5::{Digest, Md5};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::verdict::{Reason, Rejection};

/// Length of a well-formed header value (base64 of 32 bytes, padded).
pub const HEADER_LEN: usize = 44;

/// Lowercase hex digit of a nibble (0..=15), without a table lookup or a branch on the value.
pub const fn hex_digit(n: u8) -> u8 {
    // 9 - n wraps to >= 0xF7 exactly when n > 9; then add the gap from '0'+10 to 'a' (39).
    b'0' + n + ((9u8.wrapping_sub(n) >> 7) * 39)
}

/// Lowercase hex of a 16-byte digest.
pub fn hex32(digest: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (pair, byte) in out.chunks_exact_mut(2).zip(digest) {
        if let [hi, lo] = pair {
            *hi = hex_digit(byte >> 4);
            *lo = hex_digit(byte & 0x0f);
        }
    }
    out
}

/// An MD5 state over the canonical prefix, ready to be finished with each key's secret.
#[derive(Clone, Default)]
pub struct Md5Signer {
    state: Md5,
}

impl Md5Signer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.state.update(bytes);
    }

    /// The lowercase hex digest of `prefix || secret`.
    pub fn hex_with_secret(&self, secret: &[u8]) -> [u8; 32] {
        let mut h = self.state.clone();
        h.update(secret);
        hex32(&h.finalize())
    }

    /// The header value `base64(hex)` for one secret (signing; the CLI and tests use it).
    pub fn header_with_secret(&self, secret: &[u8]) -> String {
        STANDARD.encode(self.hex_with_secret(secret))
    }

    /// Verify a header value against every secret; returns the index of the (first) matching
    /// one. Every secret is always computed and compared (no early exit that would reveal which
    /// key matched). Surrounding white space in the header is ignored.
    pub fn verify<'k>(
        &self,
        header: &[u8],
        secrets: impl IntoIterator<Item = &'k [u8]>,
    ) -> Result<usize, Rejection> {
        let provided = decode_header(header)?;
        let mut found = subtle::Choice::from(0);
        let mut index: u32 = 0;
        for (i, secret) in secrets.into_iter().enumerate() {
            let expected = self.hex_with_secret(secret);
            let eq = expected.ct_eq(&provided);
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            // Keep the first match without branching on secret-dependent data.
            index.conditional_assign(&i, eq & !found);
            found |= eq;
        }
        if bool::from(found) {
            Ok(usize::try_from(index).unwrap_or(usize::MAX))
        } else {
            Err(Rejection::new(
                Reason::InvalidSignature,
                "signature mismatch",
            ))
        }
    }
}

/// Trim and decode a header value to the 32 hex characters it must carry.
fn decode_header(header: &[u8]) -> Result<[u8; 32], Rejection> {
    let trimmed = header.trim_ascii();
    if trimmed.len() != HEADER_LEN {
        return Err(Rejection::new(
            Reason::InvalidSignature,
            "wrong signature length",
        ));
    }
    let mut out = [0u8; 33];
    match STANDARD.decode_slice(trimmed, &mut out) {
        Ok(32) => {
            let mut hex = [0u8; 32];
            hex.copy_from_slice(out.get(..32).unwrap_or(&[0u8; 32]));
            Ok(hex)
        }
        Ok(_) => Err(Rejection::new(
            Reason::InvalidSignature,
            "wrong signature length",
        )),
        Err(_) => Err(Rejection::new(
            Reason::InvalidSignature,
            "signature is not base64",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Key, Secret};

    fn secrets(keys: &[Key]) -> impl Iterator<Item = &[u8]> {
        keys.iter().map(|k| k.secret.expose())
    }

    fn signer(text: &str) -> Md5Signer {
        let mut s = Md5Signer::new();
        s.update(text.as_bytes());
        s
    }
    fn key(id: &str, secret: &str) -> Key {
        Key {
            id: id.into(),
            secret: Secret::new(secret.as_bytes()),
            partners: None,
            md5: true,
            cube: false,
        }
    }

    #[test]
    fn provider_output_format() {
        // The provider's sample header decodes to 32 lowercase hex characters.
        let raw = STANDARD
            .decode("YjExZmMwNTdiZGVmNGMzZjUzYTVhMjExZWExODI4ODY=")
            .unwrap();
        assert_eq!(raw, b"b11fc057bdef4c3f53a5a211ea182886");
        assert_eq!(
            decode_header(b" YjExZmMwNTdiZGVmNGMzZjUzYTVhMjExZWExODI4ODY=\t").unwrap(),
            raw[..]
        );
    }

    /// Vectors computed independently with Python:
    /// `base64.b64encode(hashlib.md5(text.encode()).hexdigest().encode())`.
    #[test]
    fn independent_vectors() {
        let cases = [
            (
                "imsi=8900000000000010&partner_code=P002671&received_at=2022-01-19T201101&\
                 sim_id=89000000000001&text_message=device status: 1234&",
                "xGl64jNW4B223SSDAsddgh=n",
                "MWExNWQ3YTY0YTNhNDU5YWY3N2M2NjE4YjlhMGE3NzM=",
            ),
            (
                "a=1&",
                "secret",
                "ZjZiNzFhOTZmYzg4NzI2M2E5ZGYyNWVlNDE4YTE5MWI=",
            ),
            (
                "u=café 😀&",
                "k",
                "YzI2MmZkYTg2NjNjZjIxMDhlZDFhMzRmMjAwY2Q2ZWI=",
            ),
        ];
        for (prefix, secret, header) in cases {
            let s = signer(prefix);
            assert_eq!(s.header_with_secret(secret.as_bytes()), header, "{prefix}");
            assert_eq!(
                s.verify(header.as_bytes(), secrets(&[key("k", secret)])),
                Ok(0)
            );
        }
    }

    #[test]
    fn rotation_picks_the_matching_key() {
        let s = signer("a=1&");
        let keys = [key("old", "one"), key("new", "two"), key("dup", "two")];
        let h = s.header_with_secret(b"two");
        assert_eq!(s.verify(h.as_bytes(), secrets(&keys)), Ok(1));
        let h = s.header_with_secret(b"one");
        assert_eq!(s.verify(h.as_bytes(), secrets(&keys)), Ok(0));
        let h = s.header_with_secret(b"three");
        assert_eq!(
            s.verify(h.as_bytes(), secrets(&keys)).unwrap_err().reason,
            Reason::InvalidSignature
        );
        assert!(s.verify(h.as_bytes(), std::iter::empty()).is_err());
    }

    #[test]
    fn malformed_headers_are_invalid() {
        let s = signer("a=1&");
        let good = s.header_with_secret(b"k");
        let upper = STANDARD.encode(
            String::from_utf8(s.hex_with_secret(b"k").to_vec())
                .unwrap()
                .to_uppercase(),
        );
        let raw_digest = {
            let mut h = Md5::new();
            h.update(b"a=1&k");
            STANDARD.encode(h.finalize())
        };
        let cases = [
            String::new(),
            "   ".into(),
            good[..43].to_string(),
            format!("{good}A"),
            good.replace('=', "A"),
            format!("{}!", &good[..43]),
            upper,
            raw_digest,
            STANDARD.encode([b'a'; 31]) + "A",
        ];
        let keys = [key("k", "k")];
        assert_eq!(s.verify(good.as_bytes(), secrets(&keys)), Ok(0));
        for bad in cases {
            assert_eq!(
                s.verify(bad.as_bytes(), secrets(&keys)).unwrap_err().reason,
                Reason::InvalidSignature,
                "{bad}"
            );
        }
    }

    #[test]
    fn hex_digits() {
        let all: Vec<u8> = (0..16).map(hex_digit).collect();
        assert_eq!(all, b"0123456789abcdef");
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(
            &hex32(&[0xab, 0x01, 0xff, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x9c])[..8],
            b"ab01ff00"
        );
    }
}
