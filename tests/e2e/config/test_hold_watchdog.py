"""Hold mode misconfiguration is loud, never a hang (the plugin's hold watchdog).

Holding the request headers needs `allow_on_headers_stop_iteration: true` on the Wasm filter;
without it Envoy never delivers the body. The root context's tick answers a request held longer
than `hold_timeout_ms` without a body callback: 500 `filter_misconfigured` plus an error log line
naming the missing setting while this worker has never seen a body callback after a hold, 408
`request_timeout` (a stalled client) once it has. These tests pin envoy/envoy.yaml (hold mode),
whatever LF_E2E_ENVOY_YAML says, and use the Envoy binary under test (version matrix).
"""

from __future__ import annotations

import select
import socket
import time

import pytest
import yaml

import harness
from e2eutil import JSON, SAMPLE_JSON, assert_rejection, sig_json, wait_no_upstream_bytes
from harness import _read_response, build_request, send_request

PATH = "/linksfield/sms-uplink"
HOLD_TIMEOUT_MS = 1000
PLUGIN = {
    "keys": [{"id": "demo", "secret_env": "LF_WEBHOOK_SECRET"}],
    "routes": [{"name": "linksfield", "path_prefix": "/linksfield/", "scheme": "md5"}],
    "hold_timeout_ms": HOLD_TIMEOUT_MS,
    "posture": "route_list",  # GET /other below is an unprotected route
}
HEADERS = [("content-type", JSON), ("x-lf-md5", sig_json(SAMPLE_JSON))]


def _without_flag(tmp_path) -> str:
    cfg = yaml.safe_load(harness.DEFAULT_YAML.read_text())
    (f,) = harness.wasm_filters(cfg)
    assert f["typed_config"]["config"].pop("allow_on_headers_stop_iteration") is True
    out = tmp_path / "envoy-no-allow-flag.yaml"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(out)


def _headers_only(port: int, rid: str, *, send_body_after: float | None = None,
                  timeout: float = 8.0) -> tuple[harness.Response, float]:
    """Send the head of a signed POST (Content-Length set), optionally the body after a delay;
    return the response and how long it took to arrive."""
    head, body = build_request("POST", PATH, HEADERS + [("x-request-id", rid)], SAMPLE_JSON)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(head)
        if send_body_after is not None:
            time.sleep(send_body_after)
            s.sendall(body)
        resp = _read_response(s)
    return resp, time.monotonic() - started


def _category(resp: harness.Response) -> str:
    return resp.json().get("error")


@pytest.mark.parametrize("slow_body", [None, 0.3], ids=["headers-only", "body-after-pause"])
def test_missing_allow_flag_answers_500_and_names_the_setting(
        start_envoy, backend, tmp_path, slow_body):
    envoy = start_envoy(yaml_path=_without_flag(tmp_path), plugin_config=PLUGIN)
    envoy.start()
    rid = f"wd-misconfigured-{slow_body}"
    resp, took = _headers_only(envoy.listen_port, rid, send_body_after=slow_body)
    answered = time.monotonic()
    assert resp.status == 500, (resp.status, resp.body)
    assert (resp.header("content-type") or "").startswith("application/json")
    assert resp.json() == {"error": "filter_misconfigured", "request_id": rid}
    # answered by the watchdog: after hold_timeout_ms, well before Envoy's own timeouts
    assert HOLD_TIMEOUT_MS / 1000 - 0.05 <= took < HOLD_TIMEOUT_MS / 1000 + 3, took
    text = envoy.wait_for_log(lambda t: "allow_on_headers_stop_iteration" in t)
    lines = [ln for ln in text.splitlines() if "allow_on_headers_stop_iteration" in ln]
    assert lines and any("[error]" in ln and rid in ln for ln in lines), lines
    wait_no_upstream_bytes(backend, since=answered)
    # Envoy and the VM keep serving: unprotected route, and head-level rejections.
    ok = send_request(envoy.listen_port, "GET", "/other")
    assert ok.status == 200
    assert_rejection(send_request(envoy.listen_port, "POST", PATH, [("content-type", JSON)],
                                  SAMPLE_JSON), "missing_signature")


def test_stalled_client_gets_408_once_bodies_are_seen(start_envoy, backend):
    envoy = start_envoy(yaml_path=harness.DEFAULT_YAML, plugin_config=PLUGIN)
    envoy.start()
    # A genuine slow request proves the host delivers bodies to held requests.
    ok = send_request(envoy.listen_port, "POST", PATH, HEADERS, SAMPLE_JSON, slow=True)
    assert ok.status == 200, ok.body
    backend.reset()
    resp, took = _headers_only(envoy.listen_port, "wd-stalled")
    answered = time.monotonic()
    assert resp.status == 408, (resp.status, resp.body)
    assert resp.json() == {"error": "request_timeout", "request_id": "wd-stalled"}
    assert HOLD_TIMEOUT_MS / 1000 - 0.05 <= took < HOLD_TIMEOUT_MS / 1000 + 3, took
    wait_no_upstream_bytes(backend, since=answered)
    assert "allow_on_headers_stop_iteration" not in envoy.log_text()
    # A client slower than the Envoy default but faster than hold_timeout_ms still passes.
    backend.reset()
    slow_ok = send_request(envoy.listen_port, "POST", PATH, HEADERS, SAMPLE_JSON, slow=True,
                           pause=HOLD_TIMEOUT_MS / 1000 / 2)
    assert slow_ok.status == 200, slow_ok.body
    (req,) = backend.wait_requests(1)
    assert req.body == SAMPLE_JSON


def test_watchdog_off_leaves_timeouts_to_envoy(start_envoy, backend, tmp_path):
    """hold_timeout_ms: 0 disables the watchdog: a misconfigured Envoy then hangs (the failure
    mode the watchdog exists for) until Envoy's own timeouts."""
    envoy = start_envoy(yaml_path=_without_flag(tmp_path), plugin_config=dict(PLUGIN, hold_timeout_ms=0))
    envoy.start()
    with pytest.raises((socket.timeout, TimeoutError)):
        _headers_only(envoy.listen_port, "wd-off", timeout=2.5)
    wait_no_upstream_bytes(backend)


def test_client_stalled_mid_body_gets_408_and_trickle_passes(start_envoy, backend):
    """The watchdog clock restarts on every body chunk: a client that goes quiet halfway through
    its body is answered 408 after hold_timeout_ms (not after Envoy's 300 s stream idle
    timeout), while one that trickles its body with shorter gaps passes (up to hold_deadline_ms,
    30 s by default: test_trickle_ends_at_the_total_deadline)."""
    envoy = start_envoy(yaml_path=harness.DEFAULT_YAML, plugin_config=PLUGIN)
    envoy.start()
    head, body = build_request("POST", PATH, HEADERS + [("x-request-id", "wd-midbody")], SAMPLE_JSON)
    with socket.create_connection(("127.0.0.1", envoy.listen_port), timeout=8) as s:
        s.settimeout(8)
        s.sendall(head)
        time.sleep(0.3)
        s.sendall(body[: len(body) // 2])
        half_sent = time.monotonic()
        resp = _read_response(s)
        took = time.monotonic() - half_sent
    assert resp.status == 408, (resp.status, resp.body)
    assert resp.json() == {"error": "request_timeout", "request_id": "wd-midbody"}
    assert HOLD_TIMEOUT_MS / 1000 - 0.05 <= took < HOLD_TIMEOUT_MS / 1000 + 3, took
    wait_no_upstream_bytes(backend)
    envoy.wait_for_log(lambda t: "request body stalled" in t)
    assert "request body stalled for hold_timeout_ms" in envoy.log_text()

    # Trickled: 6 pieces, 0.4 s apart (2+ s in all, twice hold_timeout_ms): accepted verbatim.
    pieces = [body[i : i + len(body) // 6 + 1] for i in range(0, len(body), len(body) // 6 + 1)]
    with socket.create_connection(("127.0.0.1", envoy.listen_port), timeout=8) as s:
        s.settimeout(8)
        s.sendall(head)
        for piece in pieces:
            time.sleep(0.4)
            s.sendall(piece)
        ok = _read_response(s)
    assert ok.status == 200, (ok.status, ok.body)
    (req,) = backend.wait_requests(1)
    assert req.body == SAMPLE_JSON


def test_trickle_ends_at_the_total_deadline(start_envoy, backend):
    """hold_deadline_ms bounds a hold from its headers: a client that sends one byte every 0.3 s
    (never silent for hold_timeout_ms) is answered 408 once the deadline has passed, and nothing
    reaches the upstream."""
    deadline_ms = 1500
    envoy = start_envoy(
        yaml_path=harness.DEFAULT_YAML, plugin_config=dict(PLUGIN, hold_deadline_ms=deadline_ms)
    )
    envoy.start()
    head, body = build_request("POST", PATH, HEADERS + [("x-request-id", "wd-trickle")], SAMPLE_JSON)
    assert len(body) * 0.3 > 3 * deadline_ms / 1000, "the trickle must outlast the deadline"
    with socket.create_connection(("127.0.0.1", envoy.listen_port), timeout=8) as s:
        s.settimeout(8)
        s.sendall(head)
        started = time.monotonic()
        for i in range(len(body)):
            readable, _, _ = select.select([s], [], [], 0.3)
            if readable:
                break
            s.sendall(body[i : i + 1])
        resp = _read_response(s)
        took = time.monotonic() - started
    assert resp.status == 408, (resp.status, resp.body)
    assert resp.json() == {"error": "request_timeout", "request_id": "wd-trickle"}
    assert deadline_ms / 1000 - 0.05 <= took < deadline_ms / 1000 + 1.5, took
    wait_no_upstream_bytes(backend)
    envoy.wait_for_log(lambda t: "request body not complete within hold_deadline_ms" in t)
