//! Command-line tests of `diagnose`: each signing variant a sender may use is found, with the
//! filter configuration that accepts it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Output;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use common::cli::*;
use common::{cube_header, md5_digest, md5_header, md5_hex};
fn diagnose(req: &[u8], key: &str, extra: &[&str]) -> Output {
    let mut args = vec!["diagnose", "--request", "-", "--secret-env", "K", "--json"];
    args.extend_from_slice(extra);
    run_env(&args, &[("K", key)], Some(req))
}

/// Each variant the sender may have used: (body, content type, header made independently,
/// expected deviation text, expected filter config or None when the filter cannot accept it).
#[test]
fn diagnose_finds_each_md5_variant() {
    let s = SECRET;
    let json_ct = "application/json";
    let form_ct = "application/x-www-form-urlencoded";
    type Case<'a> = (
        &'a [u8],
        &'a str,
        String,
        Option<&'a str>,
        serde_json::Value,
    );
    let cases: Vec<Case> = vec![
        (
            br#"{"b":"2","a":"1"}"#,
            json_ct,
            md5_header(format!("a=1&b=2&{s}").as_bytes()),
            None,
            serde_json::json!({"md5": {}}),
        ),
        (
            br#"{"e":"","a":"1","z":null}"#,
            json_ct,
            md5_header(format!("a=1&{s}").as_bytes()),
            Some("empty values left out"),
            // `null` is not a string: the filter needs `value_types: any` for this body too.
            serde_json::json!({"md5": {"empty_values": "skip", "value_types": "any"}}),
        ),
        (
            br#"{"o":{"x": [1, 2]},"a":"1"}"#,
            json_ct,
            md5_header(format!(r#"a=1&o={{"x": [1, 2]}}&{s}"#).as_bytes()),
            Some("raw JSON text"),
            serde_json::json!({"md5": {"nested_values": "raw"}}),
        ),
        (
            br#"{"n":18,"t":1642385160000,"a":"1"}"#,
            json_ct,
            md5_header(format!("a=1&n=18.0&t=1.64238516E12&{s}").as_bytes()),
            Some("Java doubles"),
            serde_json::Value::Null,
        ),
        (
            br#"{"n":1.50,"e":1e3,"a":"1"}"#,
            json_ct,
            md5_header(format!("a=1&e=1000&n=1.5&{s}").as_bytes()),
            Some("shortest decimal"),
            serde_json::Value::Null,
        ),
        (
            b"m=a+b%21&k=1",
            form_ct,
            md5_header(format!("k=1&m=a+b%21&{s}").as_bytes()),
            Some("still URL-encoded"),
            serde_json::Value::Null,
        ),
        (
            br#"{"a":"1"}"#,
            json_ct,
            md5_header(format!("a=1{s}").as_bytes()),
            Some("without the `&`"),
            serde_json::Value::Null,
        ),
        (
            br#"{"a":"1"}"#,
            json_ct,
            STANDARD.encode(md5_hex(format!("a=1&{s}").as_bytes(), true)),
            Some("UPPER-case hex"),
            serde_json::Value::Null,
        ),
        (
            br#"{"a":"1"}"#,
            json_ct,
            STANDARD.encode(md5_digest(format!("a=1&{s}").as_bytes())),
            Some("raw 16-byte digest"),
            serde_json::Value::Null,
        ),
        (
            br#"{"a":"1"}"#,
            json_ct,
            md5_hex(format!("a=1&{s}").as_bytes(), false),
            Some("hex digest itself"),
            serde_json::Value::Null,
        ),
    ];
    for (body, ct, sig, deviation, config) in cases {
        let o = diagnose(&md5_request(ct, &sig, body), s, &[]);
        let v = json(&o);
        let first = &v["matches"][0];
        match deviation {
            None => assert!(first["variant"].as_array().unwrap().is_empty(), "{v}"),
            Some(d) => {
                assert_eq!(first["variant"].as_array().unwrap().len(), 1, "{v}");
                assert!(
                    first["variant"][0].as_str().unwrap().contains(d),
                    "{d}: {v}"
                );
            }
        }
        if config.is_null() {
            assert_eq!(code(&o), 3, "{v}");
            assert_eq!(v["verdict"], "unsupported_variant");
            assert_eq!(first["filter_accepts"], false);
        } else {
            assert_eq!(code(&o), 0, "{v}");
            assert_eq!(first["config"], config, "{v}");
        }
    }
}

#[test]
fn diagnose_text_output_names_the_config_and_wrong_keys() {
    let body = br#"{"e":"","a":"1"}"#;
    let req = md5_request(
        "application/json",
        &md5_header(format!("a=1&{SECRET}").as_bytes()),
        body,
    );
    let o = run_env(
        &["diagnose", "--request", "-", "--secret", SECRET],
        &[],
        Some(&req),
    );
    assert_eq!(code(&o), 0);
    assert!(
        stdout(&o).contains(r#"the filter accepts it with: "md5": {"empty_values":"skip"}"#),
        "{}",
        stdout(&o)
    );
    let o = run_env(
        &["diagnose", "--request", "-", "--secret", "wrong"],
        &[],
        Some(&req),
    );
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("key is probably wrong"));
    let req = raw_request("/x", &[("content-type", "application/json")], body);
    let o = run_env(
        &["diagnose", "--request", "-", "--secret", "s"],
        &[],
        Some(&req),
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no x-lf-md5"));
}

#[test]
fn diagnose_finds_each_cube_variant() {
    let body = br#"{"name": "liguoli","age": 18}"#;
    let canonical = r#"{"age":18,"name":"liguoli"}"#;
    let as_sent = std::str::from_utf8(body).unwrap();
    // (x-lf-algo sent, text signed, expected deviation)
    let cases = [
        (
            "HMAC-SHA1",
            format!("1.0:HMAC-SHA1:12345648444{canonical}"),
            None,
        ),
        (
            "hmac-sha1",
            format!("1.0:HMAC-SHA1:12345648444{canonical}"),
            Some("upper-cased"),
        ),
        (
            "HMAC-SHA1",
            format!("1.0:HMAC-SHA1:12345648444{as_sent}"),
            Some("exactly as sent"),
        ),
    ];
    for (algo, text, deviation) in cases {
        let sig = cube_header(CUBE_ID, CUBE_KEY.as_bytes(), text.as_bytes());
        let req = raw_request(
            "/cube/x",
            &[
                ("content-type", "application/json"),
                ("x-lf-notification-version", "1.0"),
                ("x-lf-algo", algo),
                ("x-lf-timestamp", "12345648444"),
                ("x-lf-signature", &sig),
            ],
            body,
        );
        let o = diagnose(&req, CUBE_KEY, &["--key-id", CUBE_ID]);
        let v = json(&o);
        let variant = v["matches"][0]["variant"].as_array().unwrap().clone();
        match deviation {
            None => {
                assert_eq!(code(&o), 0, "{v}");
                assert!(variant.is_empty(), "{v}");
            }
            Some(d) => {
                assert_eq!(code(&o), 3, "{v}");
                assert!(
                    variant.len() == 1 && variant[0].as_str().unwrap().contains(d),
                    "{v}"
                );
            }
        }
        let o = diagnose(&req, "not-the-key", &[]);
        assert_eq!(code(&o), 1);
    }
}
