//! Command-line tests of `verify`: genuine requests accepted with the demo config, each
//! rejection with the filter's status and its exit code, the request forms it reads, usage
//! errors, and the exit-code table of docs/cli.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use lf_webhook_guard::Reason;

use common::cli::*;
use common::{cube_header, md5_header};
#[test]
fn verify_accepts_genuine_requests_with_the_demo_config() {
    let t = Tmp::new("verify-ok");
    let body = br#"{"sim_id":"8986","text_message":"hi"}"#;
    let sig = md5_header(format!("sim_id=8986&text_message=hi&{SECRET}").as_bytes());
    let req = t.file("r.http", &md5_request("application/json", &sig, body));
    let o = run_env(
        &[
            "verify",
            "--request",
            req.to_str().unwrap(),
            "--config",
            &demo_config(),
        ],
        &DEMO_ENV,
        None,
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("x-lf-verified: md5; key=demo"));
    // Cube on /cube/ with the provider's worked example.
    let cube_body = br#"{"name": "liguoli","age": 18}"#;
    let sig = cube_header(
        CUBE_ID,
        CUBE_KEY.as_bytes(),
        br#"1.0:HMAC-SHA1:12345648444{"age":18,"name":"liguoli"}"#,
    );
    let req = raw_request(
        "/cube/usage",
        &[
            ("content-type", "application/json"),
            ("x-lf-notification-version", "1.0"),
            ("x-lf-algo", "HMAC-SHA1"),
            ("x-lf-timestamp", "12345648444"),
            ("x-lf-signature", &sig),
        ],
        cube_body,
    );
    let o = run_env(
        &[
            "verify",
            "--request",
            "-",
            "--config",
            &demo_config(),
            "--json",
        ],
        &DEMO_ENV,
        Some(&req),
    );
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["verdict"], "accepted");
    assert_eq!(v["x_lf_verified"], format!("cube; key={CUBE_ID}"));
}

#[test]
fn verify_rejections_have_the_filters_status_and_exit_codes() {
    let t = Tmp::new("verify-bad");
    let body = br#"{"a":"1"}"#;
    let good = md5_header(format!("a=1&{SECRET}").as_bytes());
    let cases: Vec<(Vec<u8>, Reason)> = vec![
        (
            md5_request("application/json", &md5_header(b"a=1&other"), body),
            Reason::InvalidSignature,
        ),
        (
            raw_request("/x", &[("content-type", "application/json")], body),
            Reason::MissingSignature,
        ),
        (
            md5_request("text/plain", &good, body),
            Reason::UnsupportedMediaType,
        ),
        (
            md5_request("application/json", &good, br#"{"a":"1","a":"2"}"#),
            Reason::MalformedBody,
        ),
        (
            b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
            Reason::MethodNotAllowed,
        ),
    ];
    for (req, reason) in cases {
        let f = t.file("r.http", &req);
        let o = run(&[
            "verify",
            "--request",
            f.to_str().unwrap(),
            "--secret",
            SECRET,
        ]);
        assert_eq!(
            code(&o),
            i32::from(reason.exit_code()),
            "{reason:?}: {}",
            stdout(&o)
        );
        assert!(
            stdout(&o).starts_with(&format!(
                "rejected (route cli): {} {}",
                reason.status(),
                reason.category()
            )),
            "{}",
            stdout(&o)
        );
        assert!(stderr(&o).contains("hint:"));
        let o = run(&[
            "verify",
            "--request",
            f.to_str().unwrap(),
            "--secret",
            SECRET,
            "--json",
        ]);
        let v = json(&o);
        assert_eq!(v["category"], reason.category());
        assert_eq!(v["status"], reason.status());
        assert_eq!(v["exit_code"], reason.exit_code());
    }
    // never prints the secret
    let f = t.file(
        "r.http",
        &md5_request("application/json", &good, br#"{"a":"2"}"#),
    );
    let o = run(&[
        "verify",
        "--request",
        f.to_str().unwrap(),
        "--secret",
        SECRET,
    ]);
    assert_eq!(code(&o), 11);
    assert!(!stdout(&o).contains(SECRET) && !stderr(&o).contains(SECRET));
}

#[test]
fn verify_reads_lf_chunked_and_separate_header_forms() {
    let t = Tmp::new("verify-forms");
    let sig = md5_header(format!("a=1&b=x y&{SECRET}").as_bytes());
    let lf = format!(
        "POST /linksfield/sms HTTP/1.1\nContent-Type: application/x-www-form-urlencoded\nx-lf-md5: {sig}\nTransfer-Encoding: chunked\n\n4\nb=x+\n5\ny&a=1\n0\n\n"
    );
    let f = t.file("lf.http", lf.as_bytes());
    let o = run(&[
        "verify",
        "--request",
        f.to_str().unwrap(),
        "--secret",
        SECRET,
    ]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("chunked body decoded"));
    let b = t.file("body", b"b=x+y&a=1");
    let md5 = format!("x-lf-md5: {sig}");
    let args = [
        "verify",
        "-H",
        "content-type: application/x-www-form-urlencoded",
        "-H",
        &md5,
        "--body",
        b.to_str().unwrap(),
        "--secret-env",
        "S",
        "--json",
    ];
    let o = run(&args);
    // S is unset: an input error, exit 2, not a verdict
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("`S`"));
    let o = run_env(&args, &[("S", SECRET)], None);
    assert_eq!(json(&o)["verdict"], "accepted");
}

#[test]
fn verify_usage_and_input_errors_exit_2_and_unprotected_paths_exit_3() {
    let t = Tmp::new("verify-usage");
    let f = t.file("r.http", &md5_request("application/json", "x", b"{}"));
    let o = run(&["verify", "--request", f.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("hint:"));
    let o = run(&["verify", "--request", "/nonexistent/file", "--secret", "s"]);
    assert_eq!(code(&o), 2);
    let g = t.file("garbage", b"not a request\n\n");
    let o = run(&["verify", "--request", g.to_str().unwrap(), "--secret", "s"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("request line"), "{}", stderr(&o));
    let o = run(&[
        "verify",
        "--request",
        f.to_str().unwrap(),
        "--secret",
        "s",
        "--config",
        "x.json",
    ]);
    assert_eq!(code(&o), 2, "--config conflicts with --secret");
    let other = t.file("o.http", &raw_request("/health", &[], b""));
    let o = run_env(
        &[
            "verify",
            "--request",
            other.to_str().unwrap(),
            "--config",
            &demo_config(),
        ],
        &DEMO_ENV,
        None,
    );
    assert_eq!(code(&o), 3);
    assert!(stdout(&o).contains("not protected"));
}

#[test]
fn readme_documents_every_exit_code() {
    let readme = std::fs::read_to_string(repo().join("docs/cli.md")).unwrap();
    for r in Reason::ALL {
        let row = format!("| {} | `{}` |", r.exit_code(), r.category());
        assert!(readme.contains(&row), "docs/cli.md lacks `{row}`");
    }
}
