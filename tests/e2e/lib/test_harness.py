"""The harness itself, against a real Envoy with the wasm filter removed (passthrough)."""

from __future__ import annotations

import json

import pytest
import yaml

import harness
from harness import send_request


@pytest.fixture(scope="module")
def passthrough(envoy_bin, envoy_yaml, backend_server):
    with harness.Envoy(
        backend_server.port, yaml_path=envoy_yaml, envoy_bin=envoy_bin, without_filter=True
    ) as env:
        yield env


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_passthrough_forwards_body_byte_for_byte(passthrough, backend, slow, chunked):
    body = b'{"a":"1","b":"\xc3\xa9"}' * 50
    resp = send_request(
        passthrough.listen_port, "POST", "/linksfield/x?q=1",
        [("content-type", "application/json"), ("x-test", "yes")], body,
        slow=slow, chunked=chunked,
    )
    assert resp.status == 200
    assert resp.json() == {"backend": "ok"}
    reqs = backend.wait_requests(1)
    assert len(reqs) == 1
    assert reqs[0].method == "POST"
    assert reqs[0].path == "/linksfield/x?q=1"
    assert reqs[0].header("x-test") == "yes"
    assert reqs[0].body == body
    assert backend.total_bytes() >= len(body)


def test_passthrough_stats_and_log(passthrough, backend):
    before = passthrough.stats().get("cluster.backend.upstream_rq_total", 0)
    assert send_request(passthrough.listen_port, "GET", "/other").status == 200
    after = passthrough.stats()["cluster.backend.upstream_rq_total"]
    assert after == before + 1
    assert "starting main dispatch loop" in passthrough.log_text()


def test_backend_keep_alive_and_reset(backend_server):
    import socket

    backend_server.reset()
    req = b"POST /k HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc"
    chunked = b"POST /c HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", backend_server.port), timeout=5) as s:
        s.sendall(req)
        r1 = harness._read_response(s)
        s.sendall(chunked)
        r2 = harness._read_response(s)
    assert r1.status == r2.status == 200
    reqs = backend_server.wait_requests(2)
    assert [(r.path, r.body) for r in reqs] == [("/k", b"abc"), ("/c", b"hi")]
    assert reqs[0].connection == reqs[1].connection
    assert backend_server.total_bytes() == len(req) + len(chunked)
    backend_server.reset()
    assert backend_server.total_bytes() == 0 and backend_server.requests() == []


def test_patch_config_rewrites_ports_wasm_and_plugin_config(envoy_yaml):
    cfg = yaml.safe_load(envoy_yaml.read_text())
    out = harness.patch_config(
        cfg, listen_port=1111, admin_port=2222, backend_port=3333,
        wasm_path="/abs/x.wasm", plugin_config={"keys": []},
    )
    assert out["admin"]["address"]["socket_address"]["port_value"] == 2222
    assert out["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] == 1111
    (wasm,) = harness.wasm_filters(out)
    assert wasm["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] == "/abs/x.wasm"
    # a custom plugin config keeps the mode (hold_headers) of the YAML under test
    expected = {"keys": []}
    if not harness.holds_headers(envoy_yaml):
        expected["hold_headers"] = False
    assert json.loads(wasm["typed_config"]["config"]["configuration"]["value"]) == expected
    eps = out["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert eps[0]["endpoint"]["address"]["socket_address"]["port_value"] == 3333
    # the original is untouched
    assert cfg["admin"]["address"]["socket_address"]["port_value"] == 9901


@pytest.mark.parametrize("name", ["envoy.yaml", "envoy-buffered.yaml"])
def test_custom_plugin_config_inherits_the_mode_unless_set(name):
    cfg = yaml.safe_load((harness.REPO / "envoy" / name).read_text())
    hold = harness.holds_headers(harness.REPO / "envoy" / name)

    def value(plugin_config):
        out = harness.patch_config(cfg, listen_port=1, admin_port=2, backend_port=3,
                                   wasm_path="/x.wasm", plugin_config=plugin_config)
        (wasm,) = harness.wasm_filters(out)
        return json.loads(wasm["typed_config"]["config"]["configuration"]["value"])

    assert value({"keys": []}) == ({"keys": []} if hold else {"keys": [], "hold_headers": False})
    assert value({"hold_headers": True}) == {"hold_headers": True}
    assert value({"hold_headers": False}) == {"hold_headers": False}


def test_missing_envoy_binary_message(monkeypatch, tmp_path):
    monkeypatch.setenv("ENVOY_BIN", str(tmp_path / "no-such-envoy"))
    with pytest.raises(harness.HarnessError) as e:
        harness.find_envoy()
    assert "Envoy not found: run `make envoy`" in str(e.value)
    assert "set ENVOY_BIN" in str(e.value)


def test_missing_wasm_message(monkeypatch, tmp_path):
    monkeypatch.setenv("LF_WASM", str(tmp_path / "none.wasm"))
    with pytest.raises(harness.HarnessError, match="run `make build`"):
        harness.find_wasm()


def test_zero_bytes_assertion_catches_a_leak(passthrough, backend):
    """The detector the rejection tests rely on fails when anything reaches the backend."""
    from e2eutil import wait_no_upstream_bytes

    resp = send_request(passthrough.listen_port, "POST", "/linksfield/x",
                        [("content-type", "application/json")], b'{"a":"1"}', slow=True)
    assert resp.status == 200
    with pytest.raises(AssertionError, match="backend received"):
        wait_no_upstream_bytes(backend)


def test_relative_envoy_bin_is_made_absolute(monkeypatch, envoy_bin):
    monkeypatch.chdir("/")
    monkeypatch.setenv("ENVOY_BIN", envoy_bin.lstrip("/"))
    assert harness.find_envoy() == envoy_bin
