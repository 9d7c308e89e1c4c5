"""A panic in the filter must not fail open ("no panic paths").

The shipped filter has no panic path (clippy denies unwrap/expect/panic/indexing outside tests),
so this module loads a test-only build, `--features crash-probe` (`make wasm-crash-probe`, in
target/crash-probe/), in which a request carrying `x-lf-crash-probe` panics inside the VM. It
proves the three things SECURITY.md ("Failing closed") promises:

1. the panic hook logs one critical line that says what happened;
2. the crashing request and every later one get Envoy's 503, with zero bytes on the backend,
   because the shipped YAML sets `fail_open: false` (a dead VM never forwards);
3. this holds for protected and unprotected routes alike (the VM is gone for the whole chain).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import harness
from e2eutil import JSON, SAMPLE_JSON, running_envoy, sig_json, wait_no_upstream_bytes
from harness import send_request

PATH = "/linksfield/sms-uplink"
PROBE_WASM = Path(
    os.environ.get("LF_WASM_CRASH_PROBE")
    or harness.REPO / "target/crash-probe/wasm32-wasip1/release/lf_webhook_guard.wasm"
)
GENUINE = [("content-type", JSON), ("x-lf-md5", sig_json(SAMPLE_JSON))]


@pytest.fixture(scope="module")
def probe_wasm() -> str:
    if not PROBE_WASM.is_file():
        pytest.fail(
            f"crash-probe filter not found at {PROBE_WASM}: run `make wasm-crash-probe` "
            "(or set LF_WASM_CRASH_PROBE)",
            pytrace=False,
        )
    return str(PROBE_WASM.resolve())


def test_panic_logs_critical_and_envoy_fails_closed(
    envoy_bin, probe_wasm, envoy_yaml, backend_server, backend
):
    with running_envoy(backend_server, envoy_bin, probe_wasm, envoy_yaml) as env:
        # The probe build is the real filter otherwise: a genuine notification passes.
        ok = send_request(env.listen_port, "POST", PATH, GENUINE, SAMPLE_JSON)
        assert ok.status == 200, (ok.status, ok.body)
        assert len(backend.wait_requests(1)) == 1
        backend.reset()

        crash = send_request(
            env.listen_port, "POST", PATH, GENUINE + [("x-lf-crash-probe", "1")], SAMPLE_JSON
        )
        assert crash.status == 503, (crash.status, crash.body, env.log_tail())
        log = env.wait_for_log(lambda t: "lf-webhook-guard: PANIC" in t)
        lines = [ln for ln in log.splitlines() if "lf-webhook-guard: PANIC" in ln]
        assert lines, env.log_tail()
        assert "[critical]" in lines[0] and "crash probe requested" in lines[0], lines[0]

        # The VM is dead: genuine and unprotected requests alike are refused, never forwarded.
        for method, path, headers, body in [
            ("POST", PATH, GENUINE, SAMPLE_JSON),
            ("GET", "/public/status", [], b""),
        ]:
            resp = send_request(env.listen_port, method, path, headers, body)
            assert resp.status == 503, (path, resp.status, resp.body)
        wait_no_upstream_bytes(backend)
        assert env.running, "Envoy itself must survive a VM crash"
