"""Ambiguous paths cannot slip a forged notification past a protected route.

`/x/../linksfield/a`, `//linksfield/a`, `/%6Cinksfield/a`, `/linksfield%2Fa` ... are the same
resource for a backend that normalises paths. With the shipped config Envoy normalises some of
them (normalize_path, merge_slashes) into the canonical path (then: 401 for a forged signature);
what Envoy leaves alone, and everything once those settings are removed, the filter reads as an
alias of the route and rejects (400 non_canonical_path), signed or not. Always zero bytes
upstream. (test_posture.py and test_frameworks.py cover many more classes of aliases.)
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


# What the shipped config answers: Envoy normalises dot segments and `//` (then the path is
# canonical: 401), keeps `%2F`/`%5C` (an alias: 400); a query is never allowed.
SHIPPED = {
    "/x/../linksfield/sms": "invalid_signature",
    "//linksfield/sms": "invalid_signature",
    "/linksfield//sms": "invalid_signature",
    "/./linksfield/sms": "invalid_signature",
    "/%6Cinksfield/sms": "invalid_signature",  # Envoy decodes escaped unreserved characters
    "/linksfield%2Fsms": "non_canonical_path",
    "/linksfield%5Csms": "non_canonical_path",
    "/a/b/../../linksfield/sms?to=/other": "query_not_allowed",
}


@pytest.mark.parametrize("path", PATHS)
def test_forged_on_ambiguous_path_shipped_config(guard, backend, path):
    resp = send_request(guard.listen_port, "POST", path, FORGED, SAMPLE_JSON, slow=True)
    assert_rejection(resp, SHIPPED[path])
    wait_no_upstream_bytes(backend)


@pytest.mark.parametrize("path", PATHS)
def test_forged_on_ambiguous_path_without_envoy_normalisation(raw_paths_envoy, backend, path):
    resp = send_request(raw_paths_envoy.listen_port, "POST", path, FORGED, SAMPLE_JSON, slow=True)
    assert_rejection(resp, "non_canonical_path")
    wait_no_upstream_bytes(backend)


def test_genuine_passes_only_on_the_canonical_path(raw_paths_envoy, backend):
    good = [("content-type", JSON), ("x-lf-md5", sig_json(SAMPLE_JSON))]
    resp = send_request(raw_paths_envoy.listen_port, "POST", "/x/../linksfield/sms", good, SAMPLE_JSON)
    assert_rejection(resp, "non_canonical_path")  # no backend has to resolve an alias
    wait_no_upstream_bytes(backend)
    resp = send_request(raw_paths_envoy.listen_port, "POST", "/linksfield/sms", good, SAMPLE_JSON)
    assert resp.status == 200, resp.body
    assert backend.requests()[-1].body == SAMPLE_JSON
    backend.reset()
    # Not a route, and deny by default: a forged signature is rejected there too.
    resp = send_request(raw_paths_envoy.listen_port, "POST", "/linksfieldx/sms", FORGED, SAMPLE_JSON)
    assert_rejection(resp, "invalid_signature")
    wait_no_upstream_bytes(backend)
