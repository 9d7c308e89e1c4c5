//! Every alias a real web framework routes to a protected handler is protected by the model:
//! `Config::classify` must answer `Target::Route(_)` or `Target::NonCanonical(_)` for it, never
//! `Unprotected` or `Exempt`, under the route-list posture (envoy/envoy-routes.yaml) and the
//! deny posture (envoy/envoy.yaml): the plugin JSON is read from those shipped YAMLs.
//!
//! The aliases come from tests/e2e/differential/test_frameworks.py, which sends >= 1,000
//! spellings of each protected path directly to Tomcat, Express 4/5, Flask, Django, FastAPI, Go
//! net/http, axum and nginx, and writes those that reached a handler as JSON lines: `path` is
//! the raw `:path` as Envoy hands it to the filter (absolute-form authority stripped), one
//! character per byte (latin-1: U+0000..U+00FF). The committed snapshot is
//! tests/data/framework-aliases.jsonl; the e2e run adds the aliases it just found with
//! `LF_FRAMEWORK_ALIASES=<file>`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use lf_webhook_guard::{route::Target, Config};

const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// The plugin JSON embedded in a shipped Envoy YAML (its single wasm filter).
fn plugin_json(yaml_rel: &str) -> String {
    let path = format!("{}/{yaml_rel}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("shipped YAML readable");
    let doc: serde_json::Value = serde_norway::from_str(&text).expect("shipped YAML parses");
    let mut found = Vec::new();
    for listener in doc["static_resources"]["listeners"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for chain in listener["filter_chains"].as_array().into_iter().flatten() {
            for f in chain["filters"].as_array().into_iter().flatten() {
                for h in f["typed_config"]["http_filters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    if h["typed_config"]["@type"] == WASM_TYPE {
                        let v = &h["typed_config"]["config"]["configuration"]["value"];
                        found.push(v.as_str().expect("configuration value").to_string());
                    }
                }
            }
        }
    }
    assert_eq!(found.len(), 1, "{path}: expected one wasm filter");
    found.remove(0)
}

fn config(json: &str) -> Config {
    Config::from_json(json.as_bytes(), |var| {
        Some(format!("route-aliases-test-{var}"))
    })
    .expect("test config parses")
}

struct Alias {
    source: String,
    line: usize,
    path: Vec<u8>,
    text: String,
}

fn load(source: &str, text: &str) -> Vec<Alias> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{source}:{}: not JSON: {e}", n + 1));
        let p = v["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{source}:{}: no \"path\"", n + 1));
        let path = p
            .chars()
            .map(|c| u8::try_from(u32::from(c)).expect("path: one latin-1 character per byte"))
            .collect();
        out.push(Alias {
            source: source.to_string(),
            line: n + 1,
            path,
            text: line.to_string(),
        });
    }
    out
}

fn aliases() -> Vec<Alias> {
    let snapshot = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/framework-aliases.jsonl"
    );
    let mut all = load(
        snapshot,
        &std::fs::read_to_string(snapshot).expect("snapshot readable"),
    );
    assert!(!all.is_empty(), "{snapshot} is empty");
    if let Ok(extra) = std::env::var("LF_FRAMEWORK_ALIASES") {
        let text = std::fs::read_to_string(&extra).expect("LF_FRAMEWORK_ALIASES readable");
        let found = load(&extra, &text);
        println!("{} aliases from {extra}", found.len());
        all.extend(found);
    }
    all
}

fn check(posture: &str, json: &str) {
    let config = config(json);
    let all = aliases();
    let mut bad = Vec::new();
    for a in &all {
        match config.classify(&a.path) {
            Target::Route(_) | Target::NonCanonical(_) => {}
            other => bad.push(format!(
                "{}:{}: {:?} -> {other:?} ({})",
                a.source,
                a.line,
                String::from_utf8_lossy(&a.path),
                a.text
            )),
        }
    }
    println!(
        "{posture}: {} aliases checked, {} unprotected or exempt",
        all.len(),
        bad.len()
    );
    assert!(
        bad.is_empty(),
        "{posture}: {} framework aliases not protected:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn every_framework_alias_is_protected_under_route_list() {
    check("route_list", &plugin_json("envoy/envoy-routes.yaml"));
}

#[test]
fn every_framework_alias_is_protected_under_deny() {
    check("deny", &plugin_json("envoy/envoy.yaml"));
}

#[test]
fn canonical_paths_are_routes_and_exemptions_exempt() {
    // The model's anchors, so that a classify() answering NonCanonical for everything fails.
    // (envoy-routes.yaml has no exemptions: under route_list /health is simply unprotected.)
    let routes = config(&plugin_json("envoy/envoy-routes.yaml"));
    assert!(matches!(
        routes.classify(b"/linksfield/sms"),
        Target::Route(_)
    ));
    assert!(matches!(routes.classify(b"/cube/notify"), Target::Route(_)));
    assert!(matches!(routes.classify(b"/other"), Target::Unprotected));
    assert!(matches!(routes.classify(b"/health"), Target::Unprotected));
    let deny = config(&plugin_json("envoy/envoy.yaml"));
    assert!(matches!(
        deny.classify(b"/linksfield/sms"),
        Target::Route(_)
    ));
    assert!(matches!(deny.classify(b"/other"), Target::Route(_)));
    assert!(matches!(deny.classify(b"/health"), Target::Exempt));
    assert!(matches!(
        deny.classify(b"/linksfield/health"),
        Target::Exempt
    ));
}
