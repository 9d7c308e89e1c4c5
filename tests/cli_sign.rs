//! Command-line tests of `sign`: the header value, all headers, stdin, a curl command a real
//! shell parses back to the exact body, errors with hints.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Command;

use common::cli::*;
use common::md5_header;
#[test]
fn sign_md5_value_headers_and_stdin() {
    let t = Tmp::new("sign");
    let body = br#"{"b":"2","a":"x y"}"#;
    let f = t.file("b.json", body);
    let want = md5_header(format!("a=x y&b=2&{SECRET}").as_bytes());
    let o = run(&["sign", "--secret", SECRET, "--body", f.to_str().unwrap()]);
    assert_eq!((code(&o), stdout(&o)), (0, format!("{want}\n")));
    let o = run_env(
        &["sign", "--secret-env", "S", "--body", "-", "--headers"],
        &[("S", SECRET)],
        Some(body),
    );
    assert_eq!(stdout(&o), format!("x-lf-md5: {want}\n"));
    // form, forced
    let o = run_env(
        &[
            "sign",
            "--secret",
            SECRET,
            "--body",
            "-",
            "--content-type",
            "form",
        ],
        &[],
        Some(b"z=1&m=a+b%21"),
    );
    assert_eq!(
        stdout(&o).trim(),
        md5_header(format!("m=a b!&z=1&{SECRET}").as_bytes())
    );
}

#[test]
fn sign_cube_prints_all_four_headers() {
    let o = run_env(
        &[
            "sign",
            "--scheme",
            "cube",
            "--key-id",
            CUBE_ID,
            "--secret-env",
            "K",
            "--timestamp",
            "12345648444",
            "--body",
            "-",
            "--headers",
        ],
        &[("K", CUBE_KEY)],
        Some(br#"{"name": "liguoli","age": 18}"#),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "x-lf-notification-version: 1.0\nx-lf-algo: HMAC-SHA1\nx-lf-timestamp: 12345648444\n\
         x-lf-signature: Ou8a5lyzPjN86ikmLeFC/pnWR3hcrEXQWV8S+RY0DMjEN9ec=\n"
    );
}

#[test]
fn sign_curl_quotes_the_body_safely() {
    let body = br#"{"text_message":"it's $HOME `x` \"q\"","a":"1"}"#;
    let o = run_env(
        &[
            "sign",
            "--secret",
            SECRET,
            "--body",
            "-",
            "--curl",
            "http://127.0.0.1:1/linksfield/x",
        ],
        &[],
        Some(body),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let cmd = stdout(&o);
    assert!(cmd.starts_with("curl "));
    assert!(cmd.contains("-H 'content-type: application/json'"));
    // Let a real shell parse the command: replace curl by printf to see the exact arguments.
    let script = cmd.replacen("curl ", "printf '%s\\n' ", 1);
    let sh = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    let args = String::from_utf8(sh.stdout).unwrap();
    let lines: Vec<&str> = args.lines().collect();
    let data = lines.iter().position(|l| *l == "--data-binary").unwrap();
    assert_eq!(lines[data + 1].as_bytes(), body);
    let sig = md5_header(format!("a=1&text_message=it's $HOME `x` \"q\"&{SECRET}").as_bytes());
    assert!(
        lines.contains(&format!("x-lf-md5: {sig}").as_str()),
        "{args}"
    );
}

#[test]
fn sign_errors_exit_2_with_hint() {
    let o = run_env(
        &["sign", "--secret-env", "UNSET_VAR_X", "--body", "-"],
        &[],
        Some(b"a=1"),
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("UNSET_VAR_X") && stderr(&o).contains("hint:"));
    let o = run_env(
        &["sign", "--secret", "s", "--body", "-"],
        &[],
        Some(br#"{"a":{"n":1}}"#),
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("malformed_body"), "{}", stderr(&o));
    assert_eq!(code(&run(&["sign", "--body", "-"])), 2);
}
