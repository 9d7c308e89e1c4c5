"""A short soak under load (the long one is `make soak`, see soak_driver.py).

4,000 requests (40% forged, every forged kind) over 32 keep-alive connections into Envoy with two
workers running the shipped config under test (hold mode, or buffer mode with
LF_E2E_ENVOY_YAML=envoy/envoy-buffered.yaml). Exactly the genuine requests reach the backend
(count and SHA-256 multiset), not one forged byte does, every answer is the documented one, no
5xx, no Wasm VM failure, counters equal the mix, memory stays flat after warm-up.
"""

from __future__ import annotations

import json

import soak_driver as soak

REQUESTS = 4000


def test_short_soak(envoy_bin, wasm_path, envoy_yaml):
    report = soak.run_soak(
        soak.SoakConfig(
            requests=REQUESTS,
            concurrency=32,
            forged_ratio=0.4,
            envoy_concurrency=2,
            # Far above the ~2-10 s this takes; a cap hit means the machine or Envoy stalled.
            duration=50.0,
            envoy_bin=envoy_bin,
            wasm_path=wasm_path,
            yaml=str(envoy_yaml),
        )
    )
    summary = {k: report[k] for k in ("mode", "requests", "genuine", "forged", "duration_s",
                                      "req_per_s", "status_5xx", "rss_mib", "vm_failures")}
    print(json.dumps(summary))
    assert report["failures"] == [], json.dumps(report, indent=1)
    assert report["passed"]
    assert not report["truncated_by_duration_cap"], report["duration_s"]
    assert report["requests"] == REQUESTS
    assert set(report["by_kind"]) == set(soak.KINDS), report["by_kind"]
    assert report["backend_requests"] == report["genuine"] > 0
    assert report["forged_markers_on_backend"] == 0
    assert report["status_5xx"] == 0 and report["transport_errors"] == 0
    assert report["vm_failures"] == 0


def test_soak_checks_catch_a_leaking_proxy(envoy_bin, envoy_yaml):
    """The same checks against Envoy without the filter: forged requests reach the backend and
    the soak must say so (guards against a driver that cannot fail)."""
    report = soak.run_soak(
        soak.SoakConfig(
            requests=300,
            concurrency=8,
            duration=30.0,
            envoy_bin=envoy_bin,
            yaml=str(envoy_yaml),
            without_filter=True,
        )
    )
    assert not report["passed"]
    assert report["forged_markers_on_backend"] > 0
    text = "\n".join(report["failures"])
    assert "forged requests have bytes on the backend" in text
    assert "backend parsed" in text
    assert "body digests differ" in text
    assert "expected 401 'invalid_signature'" in text
    assert "filter counters differ" in text
