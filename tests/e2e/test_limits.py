"""Issue 17 point 6: the shipped limits hold under a flood (the long version is `make flood`, see
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
