"""The Wasm filter delivered by ECDS from a watched file (envoy/envoy-dynamic.yaml +
envoy/ecds/lf-webhook-guard.yaml), the way Istio delivers it.

- the shipped dynamic bootstrap is envoy/envoy.yaml with the filter entry replaced by
  config_discovery, and its resource file carries exactly envoy/envoy.yaml's Wasm filter config;
- it serves the demo contract in real Envoy (genuine 200, forged 401 with zero bytes upstream,
  the per-route bypass of /linksfield/health);
- a good push (a second key) takes effect without a restart;
- bad pushes (invalid JSON, an unknown field, a missing secret variable, an invalid route, an
  unknown field of the Wasm filter itself) are refused: Envoy counts them
  (extension_config_discovery.http_filter.lf_webhook_guard.config_fail), the plugin counts the
  ones its on_configure refused (lf_webhook_guard.config_failures), the log names the field and
  no secret, and the last good configuration keeps verifying.

Runs once (marked pins_yaml: its own bootstrap, deselected by the other matrix cells).
"""

from __future__ import annotations

import copy
import json
import time

import pytest
import yaml

import harness
from ecdsutil import (CONFIG_FAILURES, DYNAMIC_YAML, ECDS_RESOURCE, ECDS_STAT, DynamicEnvoy,
                      ecds_entries, resource_typed_config)
from e2eutil import SECRET, assert_rejection, sig_json, started, wait_no_upstream_bytes
from opsutil import notification, post_md5

pytestmark = pytest.mark.pins_yaml

PATH = "/linksfield/sms"
NEXT_ENV = "LF_WEBHOOK_SECRET_NEXT"
NEXT_SECRET = "next-S3cret=&rotation"
INLINE = "Inline-Push-Secret=&77"
REJECT_UNKNOWN = "--reject-unknown-dynamic-fields"
SHIPPED = json.loads(resource_typed_config()["config"]["configuration"]["value"])


def _with_next_key(plugin: dict) -> dict:
    """The shipped plugin JSON plus a second md5 key (secret from NEXT_ENV) on every md5 route."""
    out = copy.deepcopy(plugin)
    out["keys"].append({"id": "next", "secret_env": NEXT_ENV, "schemes": ["md5"]})
    return out


LATER_ENV = "LF_WEBHOOK_SECRET_LATER"  # allowed into the VM, never set in Envoy's environment


def _allow_next_env(wasm_cfg: dict) -> None:
    """Let NEXT_ENV and LATER_ENV into the VM (idempotent: the same vm_config every time, so a
    push reuses the running VM instead of creating a new one)."""
    keys = wasm_cfg["vm_config"]["environment_variables"]["host_env_keys"]
    for name in (NEXT_ENV, LATER_ENV):
        if name not in keys:
            keys.append(name)


def _new_vm_config(wasm_cfg: dict) -> None:
    _allow_next_env(wasm_cfg)
    wasm_cfg["vm_config"]["environment_variables"]["host_env_keys"].append("LF_NOT_SET_X")


# ---------------------------------------------------------------------------------------------
# The shipped files
# ---------------------------------------------------------------------------------------------


def _without_wasm_entry(cfg: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    for hcm in harness._http_connection_managers(cfg):
        hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != "lf_webhook_guard"]
    cfg.pop("node", None)
    return cfg


def test_dynamic_bootstrap_is_the_static_one_with_ecds():
    static = yaml.safe_load(harness.DEFAULT_YAML.read_text())
    dynamic = yaml.safe_load(DYNAMIC_YAML.read_text())
    # everything but the filter entry (and the node) is envoy/envoy.yaml's: same listener, admin,
    # backend, routes (incl. the per-route bypass), stats tags
    assert _without_wasm_entry(dynamic) == _without_wasm_entry(static)
    assert dynamic["node"]["id"] and dynamic["node"]["cluster"]
    names = [f["name"] for hcm in harness._http_connection_managers(dynamic)
             for f in hcm["http_filters"]]
    static_names = [f["name"] for hcm in harness._http_connection_managers(static)
                    for f in hcm["http_filters"]]
    assert names == static_names  # same position in the chain
    (entry,) = ecds_entries(dynamic)
    assert entry["name"] == "lf_webhook_guard"
    disc = entry["config_discovery"]
    assert disc["type_urls"] == [harness.WASM_FILTER_TYPE]
    assert "default_config" not in disc, "a default config would serve before/without the push"
    src = disc["config_source"]["path_config_source"]
    assert src["path"] == "envoy/ecds/lf-webhook-guard.yaml"
    assert src["watched_directory"]["path"] == "envoy/ecds"
    assert (harness.REPO / src["path"]).resolve() == ECDS_RESOURCE.resolve()


def test_resource_file_is_the_static_wasm_filter():
    static = yaml.safe_load(harness.DEFAULT_YAML.read_text())
    (wasm,) = harness.wasm_filters(static)
    doc = yaml.safe_load(ECDS_RESOURCE.read_text())
    (res,) = doc["resources"]
    assert res["@type"] == "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
    assert res["name"] == "lf_webhook_guard"
    assert res["typed_config"] == wasm["typed_config"]  # plugin JSON, hold mode, fail policy


# ---------------------------------------------------------------------------------------------
# Real Envoy
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def denvoy(envoy_bin, wasm_path, backend_server):
    # --reject-unknown-dynamic-fields: without it Envoy applies a pushed resource with a
    # misspelt Wasm filter field, ignoring the field (test_unknown_wasm_field_is_only_a_warning...)
    e = DynamicEnvoy(backend_server.port, envoy_bin=envoy_bin, wasm_path=wasm_path,
                     env={NEXT_ENV: NEXT_SECRET}, extra_args=[REJECT_UNKNOWN],
                     wasm_config=_allow_next_env)
    with started(e) as env:
        yield env


def _assert_verifies(envoy, backend, *, next_key: bool) -> None:
    """Genuine 200 byte-for-byte; forged 401 with zero bytes upstream (slow clients); the second
    key verifies iff next_key."""
    backend.reset()
    body = notification(1)
    ok = post_md5(envoy, PATH, body, slow=True)
    assert ok.status == 200, (ok.status, ok.body, envoy.log_tail())
    (req,) = backend.wait_requests(1)
    assert req.body == body and req.header("x-lf-verified") == "md5; key=demo"
    backend.reset()
    forged = post_md5(envoy, PATH, body, sig=sig_json(body, "not-the-secret"), slow=True)
    answered = time.monotonic()
    assert_rejection(forged, "invalid_signature", forbidden=(NEXT_SECRET, INLINE))
    wait_no_upstream_bytes(backend, since=answered)
    nxt = post_md5(envoy, PATH, body, secret=NEXT_SECRET, slow=True)
    if next_key:
        assert nxt.status == 200, (nxt.status, nxt.body)
        (req,) = backend.wait_requests(1)
        assert req.header("x-lf-verified") == "md5; key=next"
    else:
        answered = time.monotonic()
        assert_rejection(nxt, "invalid_signature")
        wait_no_upstream_bytes(backend, since=answered)
    backend.reset()


def test_dynamic_config_serves_the_demo(denvoy, backend):
    assert denvoy.ecds_stats()["update_success"] == 1
    _assert_verifies(denvoy, backend, next_key=False)
    # the per-route bypass still addresses the discovered filter by name
    resp = harness.send_request(denvoy.listen_port, "GET", "/linksfield/health",
                                [("x-lf-verified", "md5; key=forged")])
    assert resp.status == 200
    (req,) = backend.wait_requests(1)
    assert req.header("x-lf-verified") is None


@pytest.fixture(scope="module")
def second_key_pushed(denvoy):
    """Push the shipped plugin JSON plus a second key; wait until Envoy applied it."""
    before = denvoy.ecds_stats()
    t0 = time.monotonic()
    denvoy.push(_with_next_key(SHIPPED), wasm_config=_allow_next_env)
    got = denvoy.wait_stat(ECDS_STAT + "update_success", lambda v: v > before["update_success"])
    assert got == before["update_success"] + 1, denvoy.log_tail()
    applied = time.monotonic() - t0
    assert denvoy.ecds_stats()["config_fail"] == before["config_fail"]
    return applied


def test_good_push_adds_a_key_without_restart(denvoy, backend, second_key_pushed):
    pid = denvoy.proc.pid
    print(f"push applied after {second_key_pushed * 1000:.0f} ms")
    assert second_key_pushed < 5.0, f"push took {second_key_pushed:.2f}s to apply"
    _assert_verifies(denvoy, backend, next_key=True)
    assert denvoy.running and denvoy.proc.pid == pid


BAD_PUSHES = [
    # (id, plugin JSON or None, Wasm config change or None, text the log must contain,
    #  refused by the plugin's on_configure (counted in config_failures) or by Envoy itself)
    ("invalid-json",
     '{"keys": [{"id": "inl", "secret": "' + INLINE + '"}], "routes": [', None,
     "lf-webhook-guard: invalid configuration", True),
    ("unknown-field",
     dict(_with_next_key(SHIPPED), max_body_byte=10), None, "max_body_byte", True),
    # a key whose variable is allowed into the VM but not set in Envoy's environment
    ("missing-secret-variable",
     dict(_with_next_key(SHIPPED),
          keys=_with_next_key(SHIPPED)["keys"] + [{"id": "later", "secret_env": LATER_ENV}]),
     None, "keys[3].secret_env", True),
    # the same with a new variable added to host_env_keys: another vm_config, so Envoy creates a
    # new VM for the push, and the counter that VM defined goes away with it (measured on 1.40:
    # lf_webhook_guard.config_failures is then absent unless an earlier failure created it in the
    # running VM). Envoy's ECDS config_fail is the reliable signal; config_failures not checked.
    ("missing-secret-variable-new-vm-config",
     dict(_with_next_key(SHIPPED),
          keys=_with_next_key(SHIPPED)["keys"] + [{"id": "third", "secret_env": "LF_NOT_SET_X"}]),
     _new_vm_config, "keys[3].secret_env", None),
    ("invalid-route",
     dict(_with_next_key(SHIPPED),
          keys=_with_next_key(SHIPPED)["keys"] + [{"id": "inl", "secret": INLINE}],
          routes=SHIPPED["routes"] + [{"name": "x", "path_prefix": "/x/", "scheme": "sha1"}]),
     None, "routes[2].scheme", True),
    ("unknown-wasm-filter-field",
     _with_next_key(SHIPPED), lambda c: (_allow_next_env(c), c.update(fail_opne=False)),
     "fail_opne", False),
]


@pytest.mark.parametrize("plugin,wasm_change,logged,by_plugin",
                         [b[1:] for b in BAD_PUSHES], ids=[b[0] for b in BAD_PUSHES])
def test_bad_push_is_refused_and_the_last_good_config_keeps_verifying(
        denvoy, backend, second_key_pushed, plugin, wasm_change, logged, by_plugin):
    before = denvoy.ecds_stats()
    failures_before = denvoy.stats().get(CONFIG_FAILURES, 0)
    log_before = len(denvoy.log_text())
    denvoy.push(plugin, wasm_config=wasm_change or _allow_next_env)
    fail = denvoy.wait_stat(ECDS_STAT + "config_fail", lambda v: v > before["config_fail"])
    assert fail == before["config_fail"] + 1, denvoy.log_tail()
    after = denvoy.ecds_stats()
    assert after["update_rejected"] == before["update_rejected"] + 1
    assert after["update_success"] == before["update_success"]
    failures = denvoy.stats().get(CONFIG_FAILURES, 0)
    if by_plugin is None:
        pass  # see BAD_PUSHES
    elif by_plugin:
        assert failures > failures_before, "lf_webhook_guard.config_failures did not count it"
    else:
        assert failures == failures_before  # Envoy refused it before any VM saw it
    text = denvoy.wait_for_log(lambda t: "config update rejected" in t[log_before:])
    new = text[log_before:]
    assert "Filesystem config update rejected" in new, new[-2000:]
    assert logged in new, f"log does not name {logged!r}:\n{new[-2000:]}"
    for secret in (SECRET, NEXT_SECRET, INLINE, harness.DEFAULT_CUBE_KEY):
        assert secret not in text, "a secret value is in Envoy's log"
    # the last good configuration (two md5 keys) keeps verifying
    _assert_verifies(denvoy, backend, next_key=True)


def test_unknown_wasm_field_is_only_a_warning_without_the_flag(envoy_bin, wasm_path, backend_server,
                                                               backend):
    """Why envoy/run-demo.sh and docs/operations.md use --reject-unknown-dynamic-fields: without
    it, Envoy applies a pushed resource whose Wasm filter config has a misspelt field (the field
    is dropped and server.dynamic_unknown_fields counts it; Envoy may or may not log a warning,
    measured both ways, so the log is not a signal to rely on)."""
    e = DynamicEnvoy(backend_server.port, envoy_bin=envoy_bin, wasm_path=wasm_path)
    try:
        e.start()
        before = e.ecds_stats()
        e.push(SHIPPED, wasm_config=lambda c: c.update(fail_opne=False))
        got = e.wait_stat(ECDS_STAT + "update_success", lambda v: v > before["update_success"])
        assert got == before["update_success"] + 1, e.log_tail()
        assert e.ecds_stats()["config_fail"] == before["config_fail"]
        assert e.stats().get("server.dynamic_unknown_fields", 0) >= 1
        _assert_verifies(e, backend, next_key=False)
    finally:
        e.close()


def test_invalid_first_resource_fails_closed_until_a_good_push(envoy_bin, wasm_path,
                                                               backend_server, backend):
    """No default_config: if the very first resource is refused, Envoy still starts (and admin
    /ready says LIVE), but every request through the filter chain gets 500 and nothing reaches
    the backend, until a good version is pushed."""
    e = DynamicEnvoy(backend_server.port, envoy_bin=envoy_bin, wasm_path=wasm_path,
                     plugin_config=dict(SHIPPED, max_body_byte=1),
                     extra_args=[REJECT_UNKNOWN])
    try:
        e.start()
        stats = e.ecds_stats()
        assert (stats["config_fail"], stats["update_success"]) == (1, 0), stats
        for method, path in (("POST", PATH), ("GET", "/public/status")):
            resp = post_md5(e, path, notification(1)) if method == "POST" else \
                harness.send_request(e.listen_port, method, path)
            assert resp.status == 500, (path, resp.status, resp.body)
        wait_no_upstream_bytes(backend)
        e.push(SHIPPED)
        got = e.wait_stat(ECDS_STAT + "update_success", lambda v: v >= 1)
        assert got == 1, e.log_tail()
        _assert_verifies(e, backend, next_key=False)
    finally:
        e.close()


def test_dynamic_files_are_generated_from_envoy_yaml():
    """envoy/gen-dynamic.py --check: the committed files are what envoy/envoy.yaml gives."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, str(harness.REPO / "envoy" / "gen-dynamic.py"), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_request_held_across_a_push_completes(denvoy, backend, second_key_pushed):
    """A genuine request whose headers arrived before a push and whose body arrives after it is
    verified and forwarded (the push does not cut or unverify requests in flight)."""
    import socket

    backend.reset()
    body = notification(42)
    head, payload = harness.build_request(
        "POST", PATH, [("content-type", "application/json"), ("x-lf-md5", sig_json(body))], body)
    before = denvoy.ecds_stats()["update_success"]
    with socket.create_connection(("127.0.0.1", denvoy.listen_port), timeout=5) as sock:
        sock.sendall(head + payload[:10])
        time.sleep(0.3)
        assert backend.total_bytes() == 0  # held
        denvoy.push(dict(_with_next_key(SHIPPED), max_body_bytes=65535),
                    wasm_config=_allow_next_env)
        assert denvoy.wait_stat(ECDS_STAT + "update_success", lambda v: v > before) == before + 1
        sock.sendall(payload[10:])
        resp = harness._read_response(sock)
    assert resp.status == 200, (resp.status, resp.body)
    (req,) = backend.wait_requests(1)
    assert req.body == body
    # and the pushed version serves the next request
    _assert_verifies(denvoy, backend, next_key=True)
