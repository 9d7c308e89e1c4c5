"""The key-rotation and shadow -> enforce runbooks (docs/operations.md) under
continuous mixed load, through ECDS file pushes to a running Envoy (envoy/envoy-dynamic.yaml,
two workers).

The load (load.Load): 24 clients, 40% forged (every forged kind of soak.KINDS), 30% slow clients
(headers, pause, half the body, pause, the rest), 30% of requests on a new connection, the rest
keep-alive. Every push is made while slow requests are held mid-body. Asserted over every step:
no genuine request rejected, reset or answered 5xx; every forged one answered its documented
status with zero bytes on the backend (enforce); every genuine one on the backend exactly once,
byte for byte, with the x-lf-verified naming the key it was signed with; the pushes applied, none
refused, the Envoy process unchanged. Each run is bounded (~15 s of traffic).
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections import Counter

import pytest

import load
import soak_driver as soak
from ecdsutil import ECDS_STAT, DynamicEnvoy, resource_typed_config
from e2eutil import started
from opsutil import notification, post_md5

pytestmark = pytest.mark.pins_yaml

NEXT_ENV = "LF_WEBHOOK_SECRET_NEXT"
NEXT_SECRET = "next-S3cret=&rotation-load"
SHIPPED = json.loads(resource_typed_config()["config"]["configuration"]["value"])
KEY_IDS = {soak.SECRET: "demo", NEXT_SECRET: "next"}
STEP_S = 3.0  # traffic per step


def _allow_next_env(wasm_cfg: dict) -> None:
    keys = wasm_cfg["vm_config"]["environment_variables"]["host_env_keys"]
    if NEXT_ENV not in keys:
        keys.append(NEXT_ENV)


def _keys(*ids: str) -> list[dict]:
    md5 = {"demo": {"id": "demo", "secret_env": "LF_WEBHOOK_SECRET", "schemes": ["md5"]},
           "next": {"id": "next", "secret_env": NEXT_ENV, "schemes": ["md5"]}}
    cube = [k for k in SHIPPED["keys"] if "cube" in k.get("schemes", [])]
    return [md5[i] for i in ids] + cube


@pytest.fixture
def denvoy(envoy_bin, wasm_path, backend_server):
    e = DynamicEnvoy(backend_server.port, envoy_bin=envoy_bin, wasm_path=wasm_path,
                     env={NEXT_ENV: NEXT_SECRET}, extra_args=["--reject-unknown-dynamic-fields"],
                     wasm_config=_allow_next_env, concurrency=2)
    with started(e) as env:
        yield env


def _push(envoy: DynamicEnvoy, lo: load.Load, plugin: dict) -> float:
    """Push `plugin` while slow requests are held mid-body; returns when Envoy applied it."""
    before = envoy.ecds_stats()
    held = lo.wait_mid_body(2)
    assert held >= 1, "no request held mid-body at the push"
    envoy.push(plugin, wasm_config=_allow_next_env)
    got = envoy.wait_stat(ECDS_STAT + "update_success", lambda v: v > before["update_success"])
    assert got == before["update_success"] + 1, envoy.log_tail()
    assert envoy.ecds_stats().get("config_fail", 0) == before.get("config_fail", 0)
    return time.monotonic()


def _wait_done(lo: load.Load, pred, timeout: float = 30.0) -> None:
    """Wait until every exchange matching pred has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(e.t_end for e in lo.snapshot() if pred(e)):
            return
        time.sleep(0.05)
    raise AssertionError("requests still in flight")


def _check(exchanges, backend, builder, *, shadow_until: float | None = None) -> dict:
    """The invariants of every step; returns the x-lf-verified values seen, by exchange."""
    acc = load.account(exchanges, backend, builder)
    problems = []
    for e in exchanges:
        if e.transport:
            problems.append(f"{e.kind} seq={e.seq}: {e.transport}")
            continue
        if e.status >= 500:
            problems.append(f"{e.kind} seq={e.seq}: {e.status} {e.error}")
        want_status, want_error = e.expected
        in_shadow = shadow_until is not None and e.t_start < shadow_until
        if e.genuine:
            if e.status != 200 or acc.delivered[e.marker] != 1:
                problems.append(f"genuine {e.kind} seq={e.seq}: {e.status} {e.error}, "
                                f"delivered {acc.delivered[e.marker]}x")
            elif acc.verified[e.marker] != [load.expected_verified(e, KEY_IDS)]:
                problems.append(f"genuine seq={e.seq} signed by {KEY_IDS[e.secret]}: "
                                f"x-lf-verified {acc.verified[e.marker]}")
        elif in_shadow and acc.delivered[e.marker]:
            # shadow: forwarded, marked with the failure category
            if e.status != 200 or acc.verified[e.marker] != [f"failed:{want_error}"]:
                problems.append(f"shadow forged {e.kind}: {e.status}, {acc.verified[e.marker]}")
        elif (e.status, e.error) != (want_status, want_error):
            problems.append(f"forged {e.kind} seq={e.seq}: {e.status} {e.error!r}, expected "
                            f"{want_status} {want_error!r}")
    shadow_markers = {e.marker for e in exchanges if shadow_until is not None
                      and e.t_start < shadow_until}
    leaked = [m for m in acc.forged_on_backend if m not in shadow_markers]
    if leaked:
        problems.append(f"{len(leaked)} forged requests have bytes on the backend: {leaked[:5]}")
    if acc.unknown_on_backend:
        problems.append(f"unknown markers on the backend: {acc.unknown_on_backend[:5]}")
    if shadow_until is None and not acc.digests_ok:
        problems.append("a backend body differs from every genuine body sent")
    assert not problems, f"{len(problems)} problems, e.g.:\n" + "\n".join(problems[:15])
    return acc.verified


def test_key_rotation_under_load(denvoy, backend):
    """Add the new key; the sender switches to it; remove the old key."""
    builder = soak.Builder(os.urandom(3).hex(), seed=21, forged_ratio=0.4)
    pid = denvoy.proc.pid
    lo = load.Load(denvoy.listen_port, builder, workers=24).start()
    marks = {}
    try:
        time.sleep(STEP_S)
        marks["added"] = _push(denvoy, lo, dict(SHIPPED, keys=_keys("demo", "next")))
        time.sleep(STEP_S)
        builder.secret = NEXT_SECRET  # the sender switches
        marks["switched"] = time.monotonic()
        time.sleep(STEP_S)
        # remove the old key only once nothing signed with it is still in flight (the runbook:
        # after the sender switched and its retries of old notifications are done)
        _wait_done(lo, lambda e: e.secret == soak.SECRET)
        marks["removed"] = _push(denvoy, lo, dict(SHIPPED, keys=_keys("next")))
        time.sleep(STEP_S)
    finally:
        exchanges = lo.stop()
    time.sleep(0.5)
    verified = _check(exchanges, backend, builder)
    # x-lf-verified shows the switch: demo before it, next after it
    by_phase = Counter()
    for e in exchanges:
        if e.genuine and e.kind != "cube":
            phase = ("before-switch" if e.t_start < marks["switched"] else "after-switch")
            by_phase[(phase, verified[e.marker][0])] += 1
    print("\nrotation:", json.dumps(load.summary(exchanges)), dict(by_phase))
    assert by_phase[("before-switch", "md5; key=demo")] > 0
    assert by_phase[("after-switch", "md5; key=next")] > 0
    assert by_phase[("after-switch", "md5; key=demo")] == 0
    assert by_phase[("before-switch", "md5; key=next")] == 0
    assert sum(e.slow for e in exchanges) > 0 and len(exchanges) > 200
    # after the removal the old key no longer verifies, the new one does
    body = notification(7)
    assert post_md5(denvoy, "/linksfield/sms", body, secret=soak.SECRET).status == 401
    assert post_md5(denvoy, "/linksfield/sms", body, secret=NEXT_SECRET).status == 200
    assert denvoy.running and denvoy.proc.pid == pid
    assert denvoy.ecds_stats().get("config_fail", 0) == 0


def test_shadow_to_enforce_under_load(denvoy, backend):
    """Start in shadow mode (forged forwarded, marked failed:<reason>), push enforce."""
    builder = soak.Builder(os.urandom(3).hex(), seed=22, forged_ratio=0.4)
    shadow = dict(SHIPPED, mode="shadow")
    t0 = _push_plain(denvoy, shadow)
    assert t0
    pid = denvoy.proc.pid
    lo = load.Load(denvoy.listen_port, builder, workers=24).start()
    try:
        time.sleep(STEP_S)
        enforced = _push(denvoy, lo, copy.deepcopy(SHIPPED))
        time.sleep(2 * STEP_S)
    finally:
        exchanges = lo.stop()
    time.sleep(0.5)
    _check(exchanges, backend, builder, shadow_until=enforced)
    acc = load.account(exchanges, backend, builder)
    forged_shadow = [e for e in exchanges if not e.genuine and acc.delivered[e.marker]]
    forged_enforced = [e for e in exchanges if not e.genuine and e.t_start >= enforced]
    print("\nshadow->enforce:", json.dumps(load.summary(exchanges)),
          f"forged forwarded in shadow: {len(forged_shadow)}, "
          f"forged rejected after enforce: {len(forged_enforced)}")
    assert forged_shadow, "shadow mode forwarded no forged request: not in shadow mode?"
    assert all(e.t_start < enforced for e in forged_shadow)
    assert len(forged_enforced) > 20
    assert denvoy.running and denvoy.proc.pid == pid


def _push_plain(envoy: DynamicEnvoy, plugin: dict) -> float:
    before = envoy.ecds_stats()
    envoy.push(plugin, wasm_config=_allow_next_env)
    got = envoy.wait_stat(ECDS_STAT + "update_success", lambda v: v > before["update_success"])
    assert got == before["update_success"] + 1, envoy.log_tail()
    return time.monotonic()


def test_rotation_checks_catch_a_rejected_sender(denvoy, backend):
    """Self-check: if the old key is removed while the sender still signs with it, the same
    checks fail (the test above can fail)."""
    builder = soak.Builder(os.urandom(3).hex(), seed=23, forged_ratio=0.2)
    lo = load.Load(denvoy.listen_port, builder, workers=8).start()
    try:
        time.sleep(1.0)
        _push(denvoy, lo, dict(SHIPPED, keys=_keys("next")))
        time.sleep(1.0)
    finally:
        exchanges = lo.stop()
    with pytest.raises(AssertionError, match="genuine"):
        _check(exchanges, backend, builder)

