//! Command-line tests of `check-config`: plugin JSON and Envoy YAML, the problems it names.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::Path;
use std::process::Output;

use common::cli::*;
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
