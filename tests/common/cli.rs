//! Support of the command-line tests (`tests/cli_*.rs`, one file per subcommand): the demo key
//! material, running the real `lf-webhook-guard` binary with a controlled environment and
//! standard input (the tests check exit codes, stdout and stderr), temporary files, and raw
//! HTTP/1.1 requests to feed it. The signatures the tests feed in come from the oracle
//! (`super`: md-5 / hmac-sha1 directly); the signed texts are written out by hand.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_lf-webhook-guard");
pub const SECRET: &str = "e2e-secret-0123=xyz";
pub const CUBE_ID: &str = "Ou8a5lyzPjN86ikmLeFC";
pub const CUBE_KEY: &str = "3QY0I6jA6jOfeIQbOde3CG2DeOllV1zufpFR393my78h3tCn7P1IfyUIhV3cS8ks";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Tmp(pub PathBuf);
impl Tmp {
    pub fn new(name: &str) -> Tmp {
        let dir = std::env::temp_dir().join(format!("lf-cli-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Tmp(dir)
    }
    pub fn file(&self, name: &str, data: &[u8]) -> PathBuf {
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

pub fn run(args: &[&str]) -> Output {
    run_env(args, &[], None)
}

pub fn run_env(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
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

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// A raw HTTP/1.1 request with CRLF line ends and a Content-Length.
pub fn raw_request(path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

pub fn md5_request(ct: &str, sig: &str, body: &[u8]) -> Vec<u8> {
    raw_request(
        "/linksfield/sms",
        &[("Content-Type", ct), ("x-lf-md5", sig)],
        body,
    )
}

pub fn demo_config() -> String {
    repo()
        .join("envoy/lf-webhook-guard.json")
        .display()
        .to_string()
}

pub const DEMO_ENV: [(&str, &str); 3] = [
    ("LF_WEBHOOK_SECRET", SECRET),
    ("LF_CUBE_KEY_ID", CUBE_ID),
    ("LF_CUBE_KEY", CUBE_KEY),
];
