"""The shipped limits hold under a flood (the long version is `make flood`, see
flood.py for what the flood sends and what is checked).

Envoy (two workers) runs the shipped config under test unchanged (hold mode, or buffer mode with
LF_E2E_ENVOY_YAML=envoy/envoy-buffered.yaml), limits included. Genuine notifications from
127.0.0.1 before, during and after a 40 s flood from 127.0.0.2 (1,200 connections holding 60 KB
bodies, 100 trickling one byte every 3 s, 8 h2c connections opening 150 streams each, forged
requests of every kind). Asserted: Envoy stays up; its RSS stays under the configured heap bound;
nothing forged reaches the backend; a genuine request answered 200 was delivered exactly once,
and one that was shed got a 5xx or a refused/reset connection (never a 4xx, never a 2xx without
delivery); genuine requests get 200 again within 10 s of the flood stopping; and the limits
engaged (global connection limit, h2 stream limit, the request and idle deadlines).
"""

from __future__ import annotations

import json

import pytest

import flood


def test_flood_from_another_address_is_contained(envoy_bin, wasm_path, envoy_yaml):
    report = flood.run_flood(flood.FloodConfig(envoy_bin=envoy_bin, wasm_path=wasm_path,
                                               yaml=str(envoy_yaml)))
    figures = {k: report.get(k) for k in (
        "mode", "rss_mib", "heap_mib_max", "downstream_cx_active_max",
        "downstream_global_cx_overflow", "genuine_ok_per_s", "genuine_during_flood",
        "recovered_after_s", "h2_refused_streams", "trickle_lifetime_s_max",
        "hold_lifetime_s_max", "flood_outcomes", "overload_stats")}
    print("\nflood:", json.dumps(figures))
    assert report["failures"] == [], json.dumps(report, indent=1)
    # genuine traffic got through before and after the flood
    assert report["genuine_ok_per_s"]["before"] and report["genuine_ok_per_s"]["after"]


def test_flood_refuses_a_config_without_limits(envoy_bin, wasm_path, tmp_path):
    """Self-check: a config that ships no limits fails the flood before any traffic."""
    import yaml

    import harness

    cfg = yaml.safe_load(harness.DEFAULT_YAML.read_text())
    del cfg["overload_manager"]
    (hcm,) = harness._http_connection_managers(cfg)
    for k in ("request_timeout", "stream_idle_timeout", "http2_protocol_options"):
        hcm.pop(k)
    path = tmp_path / "no-limits.yaml"
    path.write_text(yaml.safe_dump(cfg))
    report = flood.run_flood(flood.FloodConfig(envoy_bin=envoy_bin, wasm_path=wasm_path,
                                               yaml=str(path)))
    assert not report["passed"]
    text = "\n".join(report["failures"])
    for k in ("max_heap_size_bytes", "max_active_downstream_connections", "request_timeout",
              "stream_idle_timeout", "max_concurrent_streams"):
        assert f"ships no {k}" in text, text


# ---------------------------------------------------------------------------------------------
# The same limits for Istio (deploy/istio/envoyfilter-limits.yaml)
# ---------------------------------------------------------------------------------------------

HCM_LIMITS = ("request_headers_timeout", "request_timeout", "stream_idle_timeout",
              "http2_protocol_options")


def _limit_parts(cfg: dict) -> dict:
    """The parts of an Envoy config that carry the shipped limits."""
    import harness

    (listener,) = cfg["static_resources"]["listeners"]
    (hcm,) = harness._http_connection_managers(cfg)
    return {
        "overload_manager": cfg.get("overload_manager"),
        "listener_buffer": listener.get("per_connection_buffer_limit_bytes"),
        "hcm": {k: hcm.get(k) for k in HCM_LIMITS},
        "idle_timeout": hcm.get("common_http_protocol_options", {}).get("idle_timeout"),
    }


def _merge(dst: dict, src: dict) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v


def _istio_limited(base: dict) -> dict:
    """`base` without its own limits, with the EnvoyFilter's patches merged in (as Istio does
    for BOOTSTRAP, the gateway's HTTP connection manager and its listener)."""
    import copy

    import yaml

    import harness

    cfg = copy.deepcopy(base)
    cfg.pop("overload_manager")
    (listener,) = cfg["static_resources"]["listeners"]
    listener.pop("per_connection_buffer_limit_bytes")
    (hcm,) = harness._http_connection_managers(cfg)
    for k in HCM_LIMITS:
        hcm.pop(k)
    hcm["common_http_protocol_options"].pop("idle_timeout")
    doc = yaml.safe_load((harness.REPO / "deploy" / "istio" / "envoyfilter-limits.yaml").read_text())
    for p in doc["spec"]["configPatches"]:
        assert p["patch"]["operation"] == "MERGE"
        value = p["patch"]["value"]
        if p["applyTo"] == "BOOTSTRAP":
            _merge(cfg, value)
        elif p["applyTo"] == "NETWORK_FILTER":
            assert value["typed_config"]["@type"] == harness.HCM_TYPE
            _merge(hcm, {k: v for k, v in value["typed_config"].items() if k != "@type"})
        elif p["applyTo"] == "LISTENER":
            _merge(listener, value)
        else:
            raise AssertionError(p["applyTo"])
    return cfg


def test_istio_limits_equal_the_shipped_ones_and_validate_in_envoy(envoy_bin, wasm_path,
                                                                   tmp_path):
    import yaml

    import harness
    import sys

    sys.path.insert(0, str(harness.REPO / "tests" / "e2e" / "deploy"))
    from test_deploy_files import SECRETS, _validate

    shipped = yaml.safe_load(harness.DEFAULT_YAML.read_text())
    buffered = yaml.safe_load((harness.REPO / "envoy" / "envoy-buffered.yaml").read_text())
    cfg = _istio_limited(buffered)
    assert _limit_parts(cfg) == _limit_parts(shipped)
    for f in harness.wasm_filters(cfg):
        f["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = wasm_path
    res = _validate(envoy_bin, cfg, tmp_path, SECRETS)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]


def _shipped_configs():
    import yaml

    import harness

    return sorted(p for p in (harness.REPO / "envoy").glob("envoy*.yaml")
                  if "static_resources" in (yaml.safe_load(p.read_text()) or {}))


def test_every_shipped_config_carries_the_same_limits():
    """envoy.yaml, envoy-buffered.yaml, envoy-routes.yaml, envoy-compose.yaml, envoy-dynamic.yaml."""
    import yaml

    import harness

    paths = _shipped_configs()
    assert {p.name for p in paths} >= {"envoy.yaml", "envoy-buffered.yaml", "envoy-routes.yaml",
                                      "envoy-compose.yaml", "envoy-dynamic.yaml"}
    want = _limit_parts(yaml.safe_load(harness.DEFAULT_YAML.read_text()))
    assert want["overload_manager"] and all(want["hcm"].values()) and want["listener_buffer"]
    for p in paths:
        cfg = yaml.safe_load(p.read_text())
        assert _limit_parts(cfg) == want, p.name
        for c in cfg["static_resources"]["clusters"]:
            assert c.get("per_connection_buffer_limit_bytes") == 32768, (p.name, c["name"])


@pytest.mark.pins_yaml
def test_many_held_requests_expiring_together_leave_the_vm_alive(envoy_bin, wasm_path, backend):
    """900 requests held mid-body on two workers, all expiring at the same hold_timeout_ms tick:
    each is answered 408, and the VM survives (measured before the per-tick cap: ~300 answers in
    one on_tick overflowed the V8 stack, killed both VMs, and every later request got 503)."""
    import asyncio

    import harness
    import lfsign
    from e2eutil import started

    sig = lfsign.sign_body(b'{"a":"b"}', "wrong-secret", "json")

    async def hold(port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                       local_addr=(flood.FLOOD_SRC, 0))
        writer.write(f"POST /linksfield/notify HTTP/1.1\r\nhost: x\r\ncontent-type: "
                     f"application/json\r\nx-lf-md5: {sig}\r\ncontent-length: 65000\r\n\r\n"
                     .encode() + b'{"a":"' + b"x" * 59990)
        await writer.drain()
        try:
            return (await asyncio.wait_for(reader.read(12), 25))[:12]
        finally:
            writer.close()

    async def flood_all(port):
        return await asyncio.gather(*(hold(port) for _ in range(900)), return_exceptions=True)

    env = harness.Envoy(backend.port, yaml_path=harness.DEFAULT_YAML, envoy_bin=envoy_bin,
                        wasm_path=wasm_path, concurrency=2, log_level="warning")
    with started(env):
        answers = asyncio.run(flood_all(env.listen_port))
        from opsutil import notification, post_md5

        resp = post_md5(env, "/linksfield/notify", notification(1))
        errors = [line for line in env.log_text().splitlines() if "][error][" in line]
    from collections import Counter

    counts = Counter(a if isinstance(a, bytes) else type(a).__name__ for a in answers)
    assert counts == {b"HTTP/1.1 408": 900}, counts
    assert resp.status == 200, (resp.status, resp.body)
    assert errors == []
    assert b"xxxxxxxxxx" not in backend.raw()  # no held body reached the backend
