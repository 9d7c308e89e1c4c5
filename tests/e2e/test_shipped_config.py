"""The shipped Envoy configs embed the same plugin JSON as envoy/lf-webhook-guard.json."""

from __future__ import annotations

import json

import pytest
import yaml

import harness

PLUGIN_JSON = harness.REPO / "envoy" / "lf-webhook-guard.json"
SHIPPED = sorted(
    p for p in (harness.REPO / "envoy").glob("*.yaml")
    if harness.wasm_filters(yaml.safe_load(p.read_text()))
)


def test_envoy_yaml_is_shipped():
    assert harness.DEFAULT_YAML in SHIPPED


@pytest.mark.parametrize("yaml_path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_embedded_plugin_config_equals_json_file(yaml_path):
    embedded = json.loads(harness.embedded_plugin_config(yaml_path))
    assert embedded == json.loads(PLUGIN_JSON.read_text())


@pytest.mark.parametrize("yaml_path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_wasm_filter_settings(yaml_path):
    cfg = yaml.safe_load(yaml_path.read_text())
    (f,) = harness.wasm_filters(cfg)
    wasm = f["typed_config"]["config"]
    assert wasm["fail_open"] is False
    assert "LF_WEBHOOK_SECRET" in wasm["vm_config"]["environment_variables"]["host_env_keys"]
    assert wasm["vm_config"]["code"]["local"]["filename"] == (
        "target/wasm32-wasip1/release/lf_webhook_guard.wasm"
    )
    # the wasm filter is before the router
    (hcm,) = harness._http_connection_managers(cfg)
    names = [x["name"] for x in hcm["http_filters"]]
    assert names.index(f["name"]) < names.index("envoy.filters.http.router")
    assert names[-1] == "envoy.filters.http.router"
