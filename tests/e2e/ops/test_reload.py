"""A crashed VM comes back under `failure_policy: FAIL_RELOAD` (Envoy >= 1.36), and
nothing unverified is forwarded while it is down.

Loads the test-only crash-probe build (`make wasm-crash-probe`; a request carrying
`x-lf-crash-probe` panics inside the VM) into envoy/envoy.yaml with `fail_open: false` replaced by
`failure_policy: FAIL_RELOAD` (Envoy's default reload backoff, 1 s base interval). Then, twice:
crash the VM, and keep sending a genuine and a forged notification until the genuine one is
verified again. While the VM is down both get 503; after the reload genuine gets 200 and forged
401 again; the backend never sees a byte of the crash request or of any forged one.
test_crash.py keeps proving the shipped FAIL_CLOSED behaviour (503 until restart).

Runs once (marked pins_yaml: its own YAML, deselected by the other matrix cells).
"""

from __future__ import annotations

import time

import pytest
import yaml

import harness
from e2eutil import JSON, running_envoy, sig_json, wait_no_upstream_bytes
from harness import send_request
from opsutil import notification
from test_crash import probe_wasm  # noqa: F401  (fixture: the crash-probe build, or fail)

pytestmark = pytest.mark.pins_yaml

PATH = "/linksfield/sms"
RECOVERY_BUDGET = 8.0  # seconds; measured ~1.1 s with the default 1 s backoff
RELOAD = "wasm.lf_webhook_guard."


def _reload_yaml(tmp_path) -> str:
    cfg = yaml.safe_load(harness.DEFAULT_YAML.read_text())
    (wasm,) = harness.wasm_filters(cfg)
    wasm_cfg = wasm["typed_config"]["config"]
    assert wasm_cfg.pop("fail_open") is False
    wasm_cfg["failure_policy"] = "FAIL_RELOAD"
    path = tmp_path / "envoy-reload.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def _post(env, body: bytes, *, secret: str = harness.DEFAULT_SECRET, extra=()):
    headers = [("content-type", JSON), ("x-lf-md5", sig_json(body, secret)), *extra]
    return send_request(env.listen_port, "POST", PATH, headers, body)


def _crash_and_recover(env, backend, round_no: int) -> dict:
    backend.reset()
    crash_body = notification(f"CRASH{round_no}")
    crash = _post(env, crash_body, extra=[("x-lf-crash-probe", "1")])
    crashed_at = time.monotonic()
    assert crash.status == 503, (crash.status, crash.body, env.log_tail())
    wait_no_upstream_bytes(backend, since=crashed_at)

    seen: list[tuple[float, int, int]] = []
    genuine_sent: list[bytes] = []
    recovered = None
    i = 0
    while time.monotonic() - crashed_at < RECOVERY_BUDGET:
        i += 1
        good_body = notification(f"{round_no}{i:04d}")
        forged_body = notification(f"FORGED{round_no}-{i}")
        good = _post(env, good_body)
        forged = _post(env, forged_body, secret="not-the-secret")
        seen.append((round(time.monotonic() - crashed_at, 2), good.status, forged.status))
        assert good.status in (200, 503), seen
        assert forged.status in (401, 503), seen  # refused by the VM or by the dead-VM policy
        if good.status == 200:
            genuine_sent.append(good_body)
        if good.status == 200 and forged.status == 401:
            recovered = time.monotonic() - crashed_at
            break
        time.sleep(0.05)
    assert recovered is not None, f"VM not back within {RECOVERY_BUDGET}s: {seen}\n{env.log_tail()}"
    assert seen[0][1] == 503, f"the first request after the crash was not refused: {seen}"

    # verified again, several times in a row, on fresh connections
    for j in range(3):
        body = notification(f"{round_no}9{j:03d}")
        ok = _post(env, body)
        assert ok.status == 200, (ok.status, ok.body)
        genuine_sent.append(body)
        bad = _post(env, notification(f"FORGED{round_no}-after{j}"), secret="wrong")
        assert bad.status == 401, (bad.status, bad.body)
    got = backend.wait_requests(len(genuine_sent))
    time.sleep(0.25)
    got = backend.requests()
    assert sorted(r.body for r in got) == sorted(genuine_sent), "backend got other requests"
    raw = backend.raw()
    assert b"FORGED" not in raw and b"CRASH" not in raw, "unverified bytes reached the backend"
    return {"recovered_s": recovered, "tries": seen}


def test_crashed_vm_is_reloaded_and_verifies_again(envoy_bin, probe_wasm, backend_server,  # noqa: F811
                                                   backend, tmp_path):
    with running_envoy(backend_server, envoy_bin, probe_wasm, _reload_yaml(tmp_path)) as env:
        first = _post(env, notification(1))
        assert first.status == 200, (first.status, first.body)
        rounds = [_crash_and_recover(env, backend, n) for n in (1, 2)]
        stats = env.stats()
        assert stats.get(RELOAD + "vm_reload_success", 0) >= 2, {
            k: v for k, v in stats.items() if k.startswith(RELOAD)}
        assert stats.get(RELOAD + "vm_reload_backoff", 0) >= 1  # refused during the backoff
        assert stats.get(RELOAD + "vm_reload_failure", 0) == 0
        log = env.log_text()
        assert log.count("lf-webhook-guard: PANIC") == 2, log[-3000:]
        assert env.running
        print("FAIL_RELOAD recovery (s):", [round(r["recovered_s"], 2) for r in rounds],
              "tries:", [len(r["tries"]) for r in rounds])
        for r in rounds:
            assert r["recovered_s"] < RECOVERY_BUDGET
