"""Ambiguous paths cannot slip a forged notification past a protected route.

`/x/../linksfield/a`, `//linksfield/a`, `/%6Cinksfield/a`, `/linksfield%2Fa` ... are the same
resource for a backend that normalises paths. With the shipped config Envoy normalises them
(normalize_path, merge_slashes); with those settings removed the filter's own normalisation must
still protect them. Either way: 401 and zero bytes upstream.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from e2eutil import (
    JSON, SAMPLE_JSON, assert_rejection, running_envoy, sig_json, wait_no_upstream_bytes,
)
from harness import send_request

FORGED = [("content-type", JSON), ("x-lf-md5", sig_json(SAMPLE_JSON, "not-the-secret"))]
PATHS = [
    "/x/../linksfield/sms",
    "//linksfield/sms",
    "/linksfield//sms",
    "/./linksfield/sms",
    "/%6Cinksfield/sms",
    "/linksfield%2Fsms",
    "/linksfield%5Csms",
    "/a/b/../../linksfield/sms?to=/other",
]


def _without_normalisation(src: Path, dst: Path) -> Path:
    cfg = yaml.safe_load(src.read_text())
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm.pop("normalize_path") is True and hcm.pop("merge_slashes") is True
    dst.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dst


@pytest.fixture(scope="module")
def raw_paths_envoy(envoy_bin, wasm_path, envoy_yaml, backend_server, tmp_path_factory):
    yaml_path = _without_normalisation(envoy_yaml, tmp_path_factory.mktemp("paths") / "envoy.yaml")
    with running_envoy(backend_server, envoy_bin, wasm_path, yaml_path) as env:
        yield env


@pytest.mark.parametrize("path", PATHS)
def test_forged_on_ambiguous_path_shipped_config(guard, backend, path):
    resp = send_request(guard.listen_port, "POST", path, FORGED, SAMPLE_JSON, slow=True)
    assert_rejection(resp, "invalid_signature")
    wait_no_upstream_bytes(backend)


@pytest.mark.parametrize("path", PATHS)
def test_forged_on_ambiguous_path_without_envoy_normalisation(raw_paths_envoy, backend, path):
    resp = send_request(raw_paths_envoy.listen_port, "POST", path, FORGED, SAMPLE_JSON, slow=True)
    assert_rejection(resp, "invalid_signature")
    wait_no_upstream_bytes(backend)


def test_genuine_still_passes_and_other_paths_untouched(raw_paths_envoy, backend):
    good = [("content-type", JSON), ("x-lf-md5", sig_json(SAMPLE_JSON))]
    resp = send_request(raw_paths_envoy.listen_port, "POST", "/x/../linksfield/sms", good, SAMPLE_JSON)
    assert resp.status == 200, resp.body
    assert backend.requests()[-1].body == SAMPLE_JSON
    backend.reset()
    resp = send_request(raw_paths_envoy.listen_port, "POST", "/linksfieldx/sms", FORGED, SAMPLE_JSON)
    assert resp.status == 200, "not a protected path: passes untouched"
    assert backend.requests()[-1].body == SAMPLE_JSON
