"""Per-route control from Envoy: /linksfield/health bypasses the Wasm filter entirely
(`typed_per_filter_config` -> envoy.config.route.v3.FilterConfig `disabled: true` in the shipped
YAML), while the plugin's own route rules still protect everything else under /linksfield/."""

from __future__ import annotations

import pytest
import yaml

import harness
from e2eutil import JSON, SAMPLE_JSON, assert_rejection, sig_json, wait_no_upstream_bytes
from harness import send_request

HEALTH = "/linksfield/health"
FILTER_CONFIG = "type.googleapis.com/envoy.config.route.v3.FilterConfig"


def test_shipped_yaml_disables_the_filter_on_the_health_route(envoy_yaml):
    cfg = yaml.safe_load(envoy_yaml.read_text())
    (wasm,) = harness.wasm_filters(cfg)
    (hcm,) = harness._http_connection_managers(cfg)
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    (health,) = [r for r in routes if r["match"].get("path") == HEALTH]
    assert health["typed_per_filter_config"][wasm["name"]] == {
        "@type": FILTER_CONFIG, "disabled": True}
    assert "x-lf-verified" in health["request_headers_to_remove"]
    assert routes.index(health) < len(routes) - 1  # before the catch-all


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow"])
@pytest.mark.parametrize("method,body", [("GET", b""), ("POST", b"not json, not signed")])
def test_health_route_bypasses_the_filter(guard, backend, method, body, slow):
    resp = send_request(guard.listen_port, method, HEALTH,
                        [("content-type", "text/plain"), ("x-lf-verified", "md5; key=forged")],
                        body, slow=slow)
    assert resp.status == 200, (resp.status, resp.body)
    assert resp.json() == {"backend": "ok"}
    (req,) = backend.wait_requests(1)
    assert (req.method, req.path, req.body) == (method, HEALTH, body)
    # The filter did not run, so the route itself strips a client's verdict header.
    assert req.header_all("x-lf-verified") == []


@pytest.mark.parametrize("method,path,category", [
    ("GET", HEALTH + "z", "method_not_allowed"),        # exact-path route only
    ("GET", "/linksfield/other", "method_not_allowed"),
    ("POST", HEALTH + "/x", "missing_signature"),
])
def test_filter_still_guards_the_rest_of_linksfield(guard, backend, method, path, category):
    headers = [("content-type", JSON)]
    resp = send_request(guard.listen_port, method, path, headers,
                        SAMPLE_JSON if method == "POST" else b"")
    assert_rejection(resp, category)
    wait_no_upstream_bytes(backend)


def test_signed_request_next_to_the_health_route_still_verified(guard, backend):
    resp = send_request(guard.listen_port, "POST", "/linksfield/sms",
                        [("content-type", JSON), ("x-lf-md5", sig_json(SAMPLE_JSON))], SAMPLE_JSON)
    assert resp.status == 200, resp.body
    (req,) = backend.wait_requests(1)
    assert req.header_all("x-lf-verified") == ["md5; key=demo"]
