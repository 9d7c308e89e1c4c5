//! Process-level tests of the `lf-webhook-guard` command line: every subcommand, success and
//! failure paths, exit codes and stderr. Signatures the tests feed in are computed here
//! independently (md-5 / hmac-sha1 directly, signed texts written out by hand).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use lf_webhook_guard::Reason;
use md5::{Digest, Md5};

const BIN: &str = env!("CARGO_BIN_EXE_lf-webhook-guard");
const SECRET: &str = "e2e-secret-0123=xyz";
const CUBE_ID: &str = "Ou8a5lyzPjN86ikmLeFC";
const CUBE_KEY: &str = "3QY0I6jA6jOfeIQbOde3CG2DeOllV1zufpFR393my78h3tCn7P1IfyUIhV3cS8ks";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Tmp(PathBuf);
impl Tmp {
    fn new(name: &str) -> Tmp {
        let dir = std::env::temp_dir().join(format!("lf-cli-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Tmp(dir)
    }
    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }
}
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(args: &[&str]) -> Output {
    run_env(args, &[], None)
}

fn run_env(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("LF_WEBHOOK_SECRET")
        .env_remove("LF_CUBE_KEY")
        .env_remove("LF_CUBE_KEY_ID")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    // The CLI may exit (e.g. on a usage error) before reading its input: a broken pipe here is
    // expected, not a test failure.
    match input.write_all(stdin.unwrap_or_default()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.unwrap(),
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}
fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// base64(hex(MD5(text))) with the hex in the given case — written independently of the crate.
fn md5_header(text: &[u8], upper: bool) -> String {
    let hex: String = Md5::digest(text)
        .iter()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect();
    STANDARD.encode(hex)
}

fn hmac_b64(key: &str, text: &[u8]) -> String {
    let mut m = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).unwrap();
    m.update(text);
    STANDARD.encode(m.finalize().into_bytes())
}

/// A raw HTTP/1.1 request with CRLF line ends and a Content-Length.
fn raw_request(path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn md5_request(ct: &str, sig: &str, body: &[u8]) -> Vec<u8> {
    raw_request(
        "/linksfield/sms",
        &[("Content-Type", ct), ("x-lf-md5", sig)],
        body,
    )
}

fn demo_config() -> String {
    repo()
        .join("envoy/lf-webhook-guard.json")
        .display()
        .to_string()
}

const DEMO_ENV: [(&str, &str); 3] = [
    ("LF_WEBHOOK_SECRET", SECRET),
    ("LF_CUBE_KEY_ID", CUBE_ID),
    ("LF_CUBE_KEY", CUBE_KEY),
];

// ------------------------------------------------------------------------------- help ----

#[test]
fn every_subcommand_has_help_with_examples() {
    for sub in [
        "sign",
        "verify",
        "explain",
        "diagnose",
        "check-config",
        "completions",
    ] {
        let o = run(&[sub, "--help"]);
        assert_eq!(code(&o), 0, "{sub}");
        assert!(stdout(&o).contains("Examples:"), "{sub}: {}", stdout(&o));
    }
    let o = run(&["no-such-command"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("error"));
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&["completions", shell]);
        assert_eq!(code(&o), 0, "{shell}");
        assert!(stdout(&o).contains("check-config"), "{shell}");
    }
    assert_eq!(code(&run(&["completions", "tcsh"])), 2);
}

// ------------------------------------------------------------------------------- sign ----

#[test]
fn sign_md5_value_headers_and_stdin() {
    let t = Tmp::new("sign");
    let body = br#"{"b":"2","a":"x y"}"#;
    let f = t.file("b.json", body);
    let want = md5_header(format!("a=x y&b=2&{SECRET}").as_bytes(), false);
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
        md5_header(format!("m=a b!&z=1&{SECRET}").as_bytes(), false)
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
    let sig = md5_header(
        format!("a=1&text_message=it's $HOME `x` \"q\"&{SECRET}").as_bytes(),
        false,
    );
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

// ----------------------------------------------------------------------------- verify ----

#[test]
fn verify_accepts_genuine_requests_with_the_demo_config() {
    let t = Tmp::new("verify-ok");
    let body = br#"{"sim_id":"8986","text_message":"hi"}"#;
    let sig = md5_header(
        format!("sim_id=8986&text_message=hi&{SECRET}").as_bytes(),
        false,
    );
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
    let sig = hmac_b64(
        CUBE_KEY,
        br#"1.0:HMAC-SHA1:12345648444{"age":18,"name":"liguoli"}"#,
    );
    let sig = format!("{CUBE_ID}/{sig}");
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
    let good = md5_header(format!("a=1&{SECRET}").as_bytes(), false);
    let cases: Vec<(Vec<u8>, Reason)> = vec![
        (
            md5_request("application/json", &md5_header(b"a=1&other", false), body),
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
    let sig = md5_header(format!("a=1&b=x y&{SECRET}").as_bytes(), false);
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
    let o = run(&[
        "verify",
        "-H",
        "content-type: application/x-www-form-urlencoded",
        "-H",
        &format!("x-lf-md5: {sig}"),
        "--body",
        b.to_str().unwrap(),
        "--secret-env",
        "S",
        "--json",
    ]);
    // S is unset: an input error, exit 2, not a verdict
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("`S`"));
    let o = run_env(
        &[
            "verify",
            "-H",
            "content-type: application/x-www-form-urlencoded",
            "-H",
            &format!("x-lf-md5: {sig}"),
            "--body",
            b.to_str().unwrap(),
            "--secret-env",
            "S",
            "--json",
        ],
        &[("S", SECRET)],
        None,
    );
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

// ---------------------------------------------------------------------------- explain ----

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

// --------------------------------------------------------------------------- diagnose ----

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
            md5_header(format!("a=1&b=2&{s}").as_bytes(), false),
            None,
            serde_json::json!({"md5": {}}),
        ),
        (
            br#"{"e":"","a":"1","z":null}"#,
            json_ct,
            md5_header(format!("a=1&{s}").as_bytes(), false),
            Some("empty values left out"),
            // `null` is not a string: the filter needs `value_types: any` for this body too.
            serde_json::json!({"md5": {"empty_values": "skip", "value_types": "any"}}),
        ),
        (
            br#"{"o":{"x": [1, 2]},"a":"1"}"#,
            json_ct,
            md5_header(format!(r#"a=1&o={{"x": [1, 2]}}&{s}"#).as_bytes(), false),
            Some("raw JSON text"),
            serde_json::json!({"md5": {"nested_values": "raw"}}),
        ),
        (
            br#"{"n":18,"t":1642385160000,"a":"1"}"#,
            json_ct,
            md5_header(format!("a=1&n=18.0&t=1.64238516E12&{s}").as_bytes(), false),
            Some("Java doubles"),
            serde_json::Value::Null,
        ),
        (
            br#"{"n":1.50,"e":1e3,"a":"1"}"#,
            json_ct,
            md5_header(format!("a=1&e=1000&n=1.5&{s}").as_bytes(), false),
            Some("shortest decimal"),
            serde_json::Value::Null,
        ),
        (
            b"m=a+b%21&k=1",
            form_ct,
            md5_header(format!("k=1&m=a+b%21&{s}").as_bytes(), false),
            Some("still URL-encoded"),
            serde_json::Value::Null,
        ),
        (
            br#"{"a":"1"}"#,
            json_ct,
            md5_header(format!("a=1{s}").as_bytes(), false),
            Some("without the `&`"),
            serde_json::Value::Null,
        ),
        (
            br#"{"a":"1"}"#,
            json_ct,
            md5_header(format!("a=1&{s}").as_bytes(), true),
            Some("UPPER-case hex"),
            serde_json::Value::Null,
        ),
        (
            br#"{"a":"1"}"#,
            json_ct,
            STANDARD.encode(Md5::digest(format!("a=1&{s}").as_bytes())),
            Some("raw 16-byte digest"),
            serde_json::Value::Null,
        ),
        (
            br#"{"a":"1"}"#,
            json_ct,
            Md5::digest(format!("a=1&{s}").as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
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
        &md5_header(format!("a=1&{SECRET}").as_bytes(), false),
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
        let sig = format!("{CUBE_ID}/{}", hmac_b64(CUBE_KEY, text.as_bytes()));
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

// ----------------------------------------------------------------------- check-config ----

fn check(path: &Path, env: &[(&str, &str)], extra: &[&str]) -> Output {
    let mut args = vec!["check-config", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_env(&args, env, None)
}

#[test]
fn check_config_plugin_json() {
    let json_path = repo().join("envoy/lf-webhook-guard.json");
    let o = check(&json_path, &DEMO_ENV, &[]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let o = check(&json_path, &[("LF_WEBHOOK_SECRET", "x")], &["--json"]);
    assert_eq!(code(&o), 1);
    let v = json(&o);
    let problems = v["problems"].to_string();
    assert!(
        problems.contains("keys[1].secret_env") && problems.contains("LF_CUBE_KEY"),
        "{problems}"
    );
    assert!(
        problems.contains("keys[1].id_env") && problems.contains("LF_CUBE_KEY_ID"),
        "{problems}"
    );
    assert!(!problems.contains("LF_WEBHOOK_SECRET"));
    assert_eq!(code(&check(&json_path, &[], &["--no-env"])), 0);
    let t = Tmp::new("cc-json");
    let bad = t.file(
        "bad.json",
        br#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"nope"}]}"#,
    );
    let o = check(&bad, &[], &[]);
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("routes[0].path_prefix: must start with `/`"),
        "{}",
        stdout(&o)
    );
    let o = check(&t.file("x.yaml", b"{ [ unbalanced"), &[], &[]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("hint:"));
}

#[test]
fn check_config_flags_unsafe_exemptions_and_underscore_headers() {
    let shipped = std::fs::read_to_string(repo().join("envoy/envoy.yaml")).unwrap();
    let t = Tmp::new("cc-exempt");
    // A prefix route that disables the filter, and underscore headers allowed.
    let unsafe_yaml = shipped
        .replace(
            r#"- match: { path: "/linksfield/health" }"#,
            r#"- match: { prefix: "/app2/" }"#,
        )
        .replace(
            "headers_with_underscores_action: DROP_HEADER",
            "headers_with_underscores_action: ALLOW",
        );
    assert_ne!(unsafe_yaml, shipped);
    let o = check(
        &t.file("unsafe.yaml", unsafe_yaml.as_bytes()),
        &DEMO_ENV,
        &["--json"],
    );
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let problems = json(&o)["problems"].to_string();
    assert!(
        problems.contains("routes[0].match") && problems.contains("exact"),
        "{problems}"
    );
    assert!(
        problems.contains("headers_with_underscores_action"),
        "{problems}"
    );
    assert_eq!(
        code(&check(&repo().join("envoy/envoy.yaml"), &DEMO_ENV, &[])),
        0
    );
}

#[test]
fn check_config_envoy_yaml() {
    let shipped = repo().join("envoy/envoy.yaml");
    let o = check(&shipped, &DEMO_ENV, &[]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).contains("1 lf_webhook_guard filter(s)"));
    let text = std::fs::read_to_string(&shipped).unwrap();
    let t = Tmp::new("cc-yaml");
    // No allow_on_headers_stop_iteration, secret variable not passed to the VM.
    let broken = text
        .replace(
            "allow_on_headers_stop_iteration: true",
            "allow_on_headers_stop_iteration: false",
        )
        .replace(
            r#"host_env_keys: ["LF_WEBHOOK_SECRET", "#,
            "host_env_keys: [",
        );
    let o = check(&t.file("a.yaml", broken.as_bytes()), &DEMO_ENV, &["--json"]);
    assert_eq!(code(&o), 1);
    let p = json(&o)["problems"].to_string();
    assert!(
        p.contains("http_filters[0].typed_config.config.allow_on_headers_stop_iteration"),
        "{p}"
    );
    assert!(
        p.contains("keys[0].secret_env") && p.contains("host_env_keys"),
        "{p}"
    );
    // hold_headers: false needs a buffer filter after the wasm filter.
    let buffer_mode = text.replace(
        r#""max_body_bytes": 65536"#,
        r#""max_body_bytes": 65536, "hold_headers": false"#,
    );
    let o = check(&t.file("b.yaml", buffer_mode.as_bytes()), &DEMO_ENV, &[]);
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("no envoy.filters.http.buffer filter follows"),
        "{}",
        stdout(&o)
    );
    let with_buffer = buffer_mode.replace(
        "          - name: envoy.filters.http.router",
        "          - name: envoy.filters.http.buffer\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer\n              max_request_bytes: 65536\n          - name: envoy.filters.http.router",
    );
    let o = check(&t.file("c.yaml", with_buffer.as_bytes()), &DEMO_ENV, &[]);
    assert!(
        !stdout(&o).contains("buffer filter follows"),
        "{}",
        stdout(&o)
    );
    // A failure policy that forwards unverified requests when the VM dies.
    for (from, to, field) in [
        ("fail_open: false", "fail_open: true", "config.fail_open"),
        (
            "fail_open: false",
            "failure_policy: FAIL_OPEN",
            "config.failure_policy",
        ),
    ] {
        let open = text.replace(from, to);
        assert_ne!(open, text);
        let o = check(&t.file("e.yaml", open.as_bytes()), &DEMO_ENV, &[]);
        assert_eq!(code(&o), 1, "{to}");
        assert!(stdout(&o).contains(field), "{}", stdout(&o));
    }
    let closed = text.replace("fail_open: false", "failure_policy: FAIL_CLOSED");
    let o = check(&t.file("f.yaml", closed.as_bytes()), &DEMO_ENV, &[]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    // No lf_webhook_guard filter at all.
    let none = text.replace("lf_webhook_guard.wasm", "other.wasm");
    let o = check(&t.file("d.yaml", none.as_bytes()), &DEMO_ENV, &[]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("no envoy.filters.http.wasm filter"));
}
