//! `check-config` and the fleet de-duplication store (issue 16): the Envoy cluster named by
//! `dedup.store.etcd.cluster` must exist in the Envoy YAML (docs/fleet.md).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_lf-webhook-guard");
const DEMO_ENV: [(&str, &str); 3] = [
    ("LF_WEBHOOK_SECRET", "demo-secret"),
    ("LF_CUBE_KEY_ID", "Ou8a5lyzPjN86ikmLeFC"),
    (
        "LF_CUBE_KEY",
        "3QY0I6jA6jOfeIQbOde3CG2DeOllV1zufpFR393my78h3tCn7P1IfyUIhV3cS8ks",
    ),
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check(path: &std::path::Path) -> Output {
    Command::new(BIN)
        .arg("check-config")
        .arg(path)
        .envs(DEMO_ENV)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tmp(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lf-cli-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

#[test]
fn shipped_fleet_yaml_passes() {
    let o = check(&repo().join("envoy/envoy-fleet.yaml"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn store_cluster_missing_from_the_yaml_is_a_problem() {
    let shipped = std::fs::read_to_string(repo().join("envoy/envoy-fleet.yaml")).unwrap();
    // the plugin names a cluster the YAML does not define
    let renamed = shipped.replace("\"cluster\": \"etcd\"", "\"cluster\": \"etcd-members\"");
    assert_ne!(renamed, shipped);
    let o = check(&tmp("renamed.yaml", &renamed));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("dedup.store.etcd.cluster") && out.contains("`etcd-members`"),
        "{out}"
    );
    // the YAML's cluster renamed instead: same problem
    let cluster_gone = shipped.replace("  - name: etcd\n", "  - name: etcd-old\n");
    assert_ne!(cluster_gone, shipped);
    let o = check(&tmp("gone.yaml", &cluster_gone));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("`etcd` is not defined"), "{}", text(&o));
    // with CDS the cluster may come from there: not reported
    let cds = format!(
        "dynamic_resources:\n  cds_config: {{ resource_api_version: V3, path_config_source: {{ path: /dev/null }} }}\n{cluster_gone}"
    );
    let o = check(&tmp("cds.yaml", &cds));
    assert!(!text(&o).contains("is not defined"), "{}", text(&o));
}

#[test]
fn store_options_errors_name_the_field() {
    let shipped = std::fs::read_to_string(repo().join("envoy/envoy-fleet.yaml")).unwrap();
    let bad = shipped.replace("\"timeout_ms\": 250", "\"timeout_ms\": 2");
    assert_ne!(bad, shipped);
    let o = check(&tmp("bad-timeout.yaml", &bad));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("dedup.store.etcd.timeout_ms: must be between 10 and 5000"),
        "{}",
        text(&o)
    );
}
