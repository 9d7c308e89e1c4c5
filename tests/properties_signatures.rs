//! Property tests of the signatures, through the crate's public API only: sign, verify, tamper.
//!
//! 1. Sign-then-verify accepts: arbitrary flat JSON and form bodies (md5 scheme) and arbitrary
//!    nested JSON (Cube scheme), with arbitrary secrets / key ids / keys, go through the real
//!    decision path (`Config::from_json` -> `check_head` -> `verify_body`) and are accepted.
//!    The expected signature is computed by the oracle (`tests/common/mod.rs`), from the
//!    generated parameters (not by parsing the body), with md-5 / hmac-sha1 directly; the
//!    crate's own `sign_md5` / `sign_cube` must agree.
//! 2. Any one-byte change of the body, one-character change of the signature header, or other
//!    secret / key id / key is rejected, unless the change is semantically neutral (see
//!    `mutated_body_*`: decided by the oracle's independent strict parsers).
//!
//! Case counts are modest so that `cargo test` stays quick; `PROPTEST_CASES` overrides them
//! (`make fuzz` runs many more in release), scaled down for the expensive properties.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use lf_webhook_guard::config::Md5Options;
use lf_webhook_guard::{sign_cube, sign_md5, MediaType, Reason};
use proptest::prelude::*;
use proptest::sample::Index;

use common::props::*;
use common::*;

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

// ------------------------------------------------------ sign, verify, and tamper ----

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
