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


def test_buffered_and_compose_yaml_are_shipped():
    names = {p.name for p in SHIPPED}
    assert {"envoy.yaml", "envoy-buffered.yaml", "envoy-compose.yaml", "envoy-routes.yaml"} <= names


@pytest.mark.parametrize("yaml_path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_embedded_plugin_config_equals_json_file(yaml_path):
    """Same JSON as envoy/lf-webhook-guard.json, apart from `hold_headers`, which must match how
    the YAML holds requests: hold mode needs allow_on_headers_stop_iteration, buffer mode
    ("hold_headers": false) needs envoy.filters.http.buffer after the Wasm filter."""
    embedded = json.loads(harness.embedded_plugin_config(yaml_path))
    reference = json.loads(PLUGIN_JSON.read_text())
    if yaml_path.name == "envoy-routes.yaml":
        # The route-list posture: the same keys and routes, nothing else protected.
        reference["posture"] = "route_list"
        del reference["exempt"]
    if yaml_path.name == "envoy-fleet.yaml":
        # The fleet demo: the same plugin JSON plus `dedup` with the etcd store (docs/fleet.md).
        assert embedded.pop("dedup")["store"]["etcd"]["cluster"] == "etcd"
    hold = embedded.pop("hold_headers", True)
    assert embedded == reference
    cfg = yaml.safe_load(yaml_path.read_text())
    (f,) = harness.wasm_filters(cfg)
    (hcm,) = harness._http_connection_managers(cfg)
    names = [x["name"] for x in hcm["http_filters"]]
    allow = f["typed_config"]["config"].get("allow_on_headers_stop_iteration", False)
    if hold:
        assert allow is True, "hold mode needs allow_on_headers_stop_iteration: true"
    else:
        assert hold is False and not allow
        buf = names.index("envoy.filters.http.buffer")
        assert names.index(f["name"]) < buf < names.index("envoy.filters.http.router")
        max_request = hcm["http_filters"][buf]["typed_config"]["max_request_bytes"]
        assert max_request >= reference.get("max_body_bytes", 65536)


@pytest.mark.parametrize("yaml_path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_wasm_filter_settings(yaml_path):
    cfg = yaml.safe_load(yaml_path.read_text())
    (f,) = harness.wasm_filters(cfg)
    wasm = f["typed_config"]["config"]
    assert wasm["fail_open"] is False
    assert "LF_WEBHOOK_SECRET" in wasm["vm_config"]["environment_variables"]["host_env_keys"]
    # envoy-compose.yaml: the path where envoy/docker-compose.yaml mounts the build output
    # (checked in test_deploy_files.py)
    assert wasm["vm_config"]["code"]["local"]["filename"] == (
        "/etc/envoy/lf_webhook_guard.wasm" if yaml_path.name == "envoy-compose.yaml"
        else "target/wasm32-wasip1/release/lf_webhook_guard.wasm"
    )
    # the wasm filter is before the router
    (hcm,) = harness._http_connection_managers(cfg)
    names = [x["name"] for x in hcm["http_filters"]]
    assert names.index(f["name"]) < names.index("envoy.filters.http.router")
    assert names[-1] == "envoy.filters.http.router"


@pytest.mark.parametrize("yaml_path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_paths_are_normalised_before_filters(yaml_path):
    # The filter also matches normalised paths itself (test_paths.py); Envoy normalising first
    # means the filter, the router and the backend agree on one path.
    cfg = yaml.safe_load(yaml_path.read_text())
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm.get("normalize_path") is True and hcm.get("merge_slashes") is True


@pytest.mark.parametrize("yaml_path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_headers_with_underscores_are_dropped(yaml_path):
    # `x_lf_verified` reads as `x-lf-verified` to CGI-style servers; the filter strips it where it
    # runs, Envoy drops it everywhere (exempt routes included).
    cfg = yaml.safe_load(yaml_path.read_text())
    (hcm,) = harness._http_connection_managers(cfg)
    opts = hcm.get("common_http_protocol_options", {})
    assert opts.get("headers_with_underscores_action") == "DROP_HEADER"
