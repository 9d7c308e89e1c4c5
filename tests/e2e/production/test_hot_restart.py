"""An Envoy hot restart under continuous mixed load loses no genuine
notification and forwards no forged one.

Two Envoy processes on the same config (envoy/envoy.yaml, two workers each), driven by the test:
epoch 0 (`--base-id B --restart-epoch 0`), then, while the load runs, epoch 1 (`--base-id B
--restart-epoch 1`), which takes the listening socket over from its parent and asks it to drain;
the parent drains for `--drain-time-s` and exits after `--parent-shutdown-time-s`.

"Lost" (the definition this test asserts, also in docs/operations.md "Hot restart"): a genuine
notification is NOT lost iff it was finally answered 200 by the backend, and the backend received
it exactly once, byte for byte. Before that final answer, an attempt may fail at the connection
level (connection refused, reset or closed before any response byte) and be retried on a new
connection, as the provider retries; such a failed attempt must not have reached the backend
(else the retry would deliver it twice: counted as lost). A forged request must never have a byte
on the backend, and its final answer must be its documented rejection. No attempt may get a 5xx.
"""

from __future__ import annotations

import json
import os
import random
import time

import pytest

import harness
import load
import soak_driver as soak
from e2eutil import started

pytestmark = pytest.mark.pins_yaml

DRAIN_S = 2
PARENT_SHUTDOWN_S = 5


def _epoch(env: harness.Envoy, base_id: int, epoch: int) -> None:
    env.base_id_args = ["--base-id", str(base_id), "--restart-epoch", str(epoch),
                        "--drain-time-s", str(DRAIN_S),
                        "--parent-shutdown-time-s", str(PARENT_SHUTDOWN_S)]


def _server_info(env: harness.Envoy) -> dict | None:
    try:
        status, body = env.admin_get("/server_info", timeout=1.0)
    except OSError:
        return None
    return json.loads(body) if status == 200 else None


def _wait_child_live(child: harness.Envoy, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise AssertionError(f"epoch 1 exited with {child.proc.returncode}:\n"
                                 + child.log_tail())
        info = _server_info(child)
        if (info and info.get("state") == "LIVE"
                and str(info.get("command_line_options", {}).get("restart_epoch")) == "1"):
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError("epoch 1 did not become LIVE:\n" + child.log_tail())


def _lost(exchanges, backend, builder) -> list[str]:
    """Every violation of the definition in the module docstring."""
    acc = load.account(exchanges, backend, builder)
    problems = []
    for e in exchanges:
        want = e.expected
        if any(a.isdigit() and int(a) >= 500 for a in e.attempts):
            problems.append(f"{e.kind} seq={e.seq}: 5xx in attempts {e.attempts}")
        if e.genuine:
            if e.transport or e.status != 200 or acc.delivered[e.marker] != 1:
                problems.append(f"LOST genuine seq={e.seq}: attempts {e.attempts}, "
                                f"delivered {acc.delivered[e.marker]}x")
        elif e.transport or (e.status, e.error) != want:
            problems.append(f"forged {e.kind} seq={e.seq}: attempts {e.attempts} {e.error!r}, "
                            f"expected {want}")
    if acc.forged_on_backend:
        problems.append(f"forged on the backend: {acc.forged_on_backend[:5]}")
    if acc.unknown_on_backend or not acc.digests_ok:
        problems.append("the backend received a body that is not a genuine one sent")
    return problems


def test_hot_restart_under_load_loses_nothing(envoy_bin, wasm_path, backend):
    base_id = random.randint(100_000, 4_000_000)
    parent = harness.Envoy(backend.port, yaml_path=harness.DEFAULT_YAML, envoy_bin=envoy_bin,
                           wasm_path=wasm_path, concurrency=2)
    _epoch(parent, base_id, 0)
    child = harness.Envoy(backend.port, yaml_path=harness.DEFAULT_YAML, envoy_bin=envoy_bin,
                          wasm_path=wasm_path, concurrency=2)
    _epoch(child, base_id, 1)
    child.listen_port, child.admin_port = parent.listen_port, parent.admin_port
    builder = soak.Builder(os.urandom(3).hex(), seed=31, forged_ratio=0.4)
    with started(parent):
        try:
            lo = load.Load(parent.listen_port, builder, workers=16, retry_transport=True).start()
            try:
                time.sleep(2.0)
                t_restart = time.monotonic()
                child._spawn()
                t_live = _wait_child_live(child)
                rc = parent.proc.wait(timeout=PARENT_SHUTDOWN_S + 20)
                t_parent_gone = time.monotonic()
                time.sleep(2.0)
            finally:
                exchanges = lo.stop()
            time.sleep(0.5)
            child_running = child.running
            child_log = child.log_text()
        finally:
            child.close()
    parent_log = parent.log_text()
    assert rc == 0, f"the parent exited with {rc}:\n{parent_log[-2000:]}"
    assert child_running, child_log[-2000:]

    problems = _lost(exchanges, backend, builder)
    assert not problems, f"{len(problems)} problems, e.g.:\n" + "\n".join(problems[:15])

    during = [e for e in exchanges if t_restart <= e.t_start < t_parent_gone]
    after = [e for e in exchanges if e.t_start >= t_parent_gone]
    retried = [e for e in exchanges if len(e.attempts) > 1]
    print("\nhot restart:", json.dumps(load.summary(exchanges)),
          f"child live after {t_live - t_restart:.2f}s, parent gone after "
          f"{t_parent_gone - t_restart:.2f}s; {len(during)} requests during the handover, "
          f"{len(after)} after; retried: {[e.attempts for e in retried][:8]}")
    assert len(during) > 50 and len(after) > 20
    assert sum(e.slow for e in during) > 0


def test_lost_checks_catch_a_killed_envoy(envoy_bin, wasm_path, backend):
    """Self-check: an Envoy killed under the same load (no hot restart) loses notifications, and
    the same checks say so (the test above can fail)."""
    env = harness.Envoy(backend.port, yaml_path=harness.DEFAULT_YAML, envoy_bin=envoy_bin,
                        wasm_path=wasm_path, concurrency=2)
    builder = soak.Builder(os.urandom(3).hex(), seed=32, forged_ratio=0.4)
    with started(env):
        lo = load.Load(env.listen_port, builder, workers=16, retry_transport=True).start()
        try:
            time.sleep(1.0)
            env.proc.kill()
            env.proc.wait(timeout=10)
            time.sleep(1.5)
        finally:
            exchanges = lo.stop()
    problems = _lost(exchanges, backend, builder)
    assert any(p.startswith("LOST genuine") for p in problems), problems[:5]
