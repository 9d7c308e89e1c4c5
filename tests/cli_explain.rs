//! Command-line tests of `explain`: the signed text (secret redacted) and the decisions.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use lf_webhook_guard::Reason;

use common::cli::*;
#[test]
fn explain_md5_json_and_form() {
    let o = run_env(
        &["explain", "--body", "-", "--any-value-types"],
        &[],
        Some(br#"{"n":1.50,"b":"\u00e9","z":null,"a":true}"#),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("  a=true&b=é&n=1.50&z=&<secret>\n"), "{out}");
    assert!(out.contains("literal text exactly as sent") && out.contains("n=1.50"));
    assert!(out.contains("kept as `key=`") && out.contains("sent n, b, z, a; signed a, b, n, z"));
    assert!(out.contains("escapes decoded"));
    let o = run_env(
        &["explain", "--body", "-", "--skip-empty", "--json"],
        &[],
        Some(b"m=a+b%21&e=&k=1"),
    );
    let v = json(&o);
    assert_eq!(v["signed_text"], "k=1&m=a b!&<secret>");
    let d = v["decisions"].to_string();
    assert!(d.contains("form-decoded") && d.contains("left out"), "{d}");
}

#[test]
fn explain_cube_and_rejected_bodies() {
    let o = run_env(
        &[
            "explain",
            "--scheme",
            "cube",
            "--timestamp",
            "12345648444",
            "--body",
            "-",
        ],
        &[],
        Some(br#"{"name": "liguoli","age": 18}"#),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("  1.0:HMAC-SHA1:12345648444{\"age\":18,\"name\":\"liguoli\"}\n"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("differs from the canonical"));
    let o = run_env(&["explain", "--body", "-"], &[], Some(br#"{"a":{"b":1}}"#));
    assert_eq!(code(&o), i32::from(Reason::MalformedBody.exit_code()));
    assert!(stderr(&o).contains("nested_values"), "{}", stderr(&o));
    let o = run_env(
        &["explain", "--body", "-", "--raw-nested"],
        &[],
        Some(br#"{"a":{"b":1}}"#),
    );
    assert!(
        stdout(&o).contains(r#"a={"b":1}&<secret>"#),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        code(&run_env(
            &["explain", "--scheme", "cube", "--body", "-"],
            &[],
            Some(b"{}")
        )),
        2
    );
}
