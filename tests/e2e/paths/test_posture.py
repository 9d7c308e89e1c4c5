"""Deny by default and the alias-aware path matcher, in each shipped posture.

`envoy/envoy.yaml` (hold) and `envoy/envoy-buffered.yaml` (buffer): every request needs a valid
signature unless exactly `/health` or `/linksfield/health`; `envoy/envoy-routes.yaml`: only the
routes are protected, other paths are forwarded. In all three a forged request on any alias of a
protected path (Tomcat's `;jsessionid=`, `..;`, Express's case-insensitive routing, ...) puts zero
bytes upstream, and a genuine one on an alias is rejected too (400 `non_canonical_path`).
The many-framework proof is test_frameworks.py; this module pins the shipped configs' contract.
"""

from __future__ import annotations

import pytest

import harness
from e2eutil import (
    JSON, SAMPLE_JSON, assert_rejection, cube_headers, running_envoy, sig_json,
    wait_no_upstream_bytes,
)
from harness import send_request

pytestmark = pytest.mark.pins_yaml

YAMLS = ["envoy.yaml", "envoy-buffered.yaml", "envoy-routes.yaml"]
DENY = {"envoy.yaml", "envoy-buffered.yaml"}
FORGED = [("content-type", JSON), ("x-lf-md5", sig_json(SAMPLE_JSON, "not-the-secret"))]
GENUINE = [("content-type", JSON), ("x-lf-md5", sig_json(SAMPLE_JSON))]
# The two spellings of the issue (Tomcat drops `;` parameters, Express ignores case), and more
# classes of aliases of /linksfield/sms that some backend routes to its handler.
ALIASES = [
    "/linksfield;jsessionid=x/sms",
    "/LinksField/sms",
    "/app2/..;/linksfield/sms",
    "/linksfield/sms;x=1",
    "/%6Cinksfield/sms",
    "/%256Cinksfield/sms",
    "/linksfield%2Fsms",
    "/linksfield%5Csms",
    "/LINKSFIELD/sms",
    "/linksfield",
    "/lin%EF%BD%8Bsfield/sms",
    "/linksfield/health/..;/sms",
    "/health/..;/linksfield/sms",
]


@pytest.fixture(scope="module", params=YAMLS)
def shipped(request, envoy_bin, wasm_path, backend_server):
    with running_envoy(
        backend_server, envoy_bin, wasm_path, harness.REPO / "envoy" / request.param
    ) as env:
        env.yaml_name = request.param
        yield env


# Spellings that Envoy's normalize_path (on in every shipped config) turns into the canonical
# path itself (measured on 1.40: `..;` segments are resolved like `..`, `%6C` is decoded): the
# filter then sees `/linksfield/sms` and a forged signature is 401.
NORMALISED_BY_ENVOY = {"/app2/..;/linksfield/sms", "/%6Cinksfield/sms",
                       "/linksfield/health/..;/sms", "/health/..;/linksfield/sms"}


@pytest.mark.parametrize("path", ALIASES)
def test_forged_alias_is_rejected_before_the_backend(shipped, backend, path):
    resp = send_request(shipped.listen_port, "POST", path, FORGED, SAMPLE_JSON, slow=True)
    expected = "invalid_signature" if path in NORMALISED_BY_ENVOY else "non_canonical_path"
    assert_rejection(resp, expected)
    wait_no_upstream_bytes(backend)


@pytest.mark.parametrize("path", ["/linksfield;jsessionid=x/sms", "/LinksField/sms",
                                  "/linksfield%2Fsms", "/linksfield"])
def test_genuine_on_an_alias_is_rejected_too(shipped, backend, path):
    resp = send_request(shipped.listen_port, "POST", path, GENUINE, SAMPLE_JSON, slow=True)
    assert_rejection(resp, "non_canonical_path")
    wait_no_upstream_bytes(backend)


def test_genuine_on_canonical_paths_pass(shipped, backend):
    resp = send_request(shipped.listen_port, "POST", "/linksfield/sms", GENUINE, SAMPLE_JSON)
    assert resp.status == 200, resp.body
    body = b'{"age":18,"name":"liguoli"}'
    resp = send_request(shipped.listen_port, "POST", "/cube/notify", cube_headers(body), body)
    assert resp.status == 200, resp.body
    md5, cube = backend.wait_requests(2)
    assert (md5.path, md5.body) == ("/linksfield/sms", SAMPLE_JSON)
    assert md5.header("x-lf-verified") == "md5; key=demo"
    assert cube.header("x-lf-verified").startswith("cube; key=")


@pytest.mark.parametrize("path", ["/health", "/linksfield/health"])
def test_exempt_paths_pass_without_client_verdicts(shipped, backend, path):
    headers = [
        ("x-lf-verified", "md5; key=evil"),
        ("x_lf_verified", "md5; key=evil"),
        ("X-Original-URL", "/linksfield/sms"),
    ]
    resp = send_request(shipped.listen_port, "GET", path, headers)
    assert resp.status == 200, resp.body
    (req,) = backend.wait_requests(1)
    assert req.path == path
    raw = backend.raw().lower()
    assert b"verified" not in raw and b"x-original-url" not in raw, raw


@pytest.mark.parametrize("path", ["/other", "/linksfieldx/sms", "/health/", "/Health"])
def test_other_paths_need_a_signature_unless_route_list(shipped, backend, path):
    resp = send_request(shipped.listen_port, "POST", path, FORGED, SAMPLE_JSON, slow=True)
    if shipped.yaml_name in DENY:
        assert_rejection(resp, "invalid_signature")
        wait_no_upstream_bytes(backend)
    else:
        assert resp.status == 200, resp.body
        (req,) = backend.wait_requests(1)
        assert req.path == path and req.header("x-lf-verified") is None


def test_deny_catch_all_contract(shipped, backend):
    port = shipped.listen_port
    if shipped.yaml_name not in DENY:
        # route_list has no catch-all: unlisted paths are forwarded as sent, query included.
        resp = send_request(port, "GET", "/favicon.ico?a=1")
        assert resp.status == 200, resp.body
        (req,) = backend.wait_requests(1)
        assert req.path == "/favicon.ico?a=1"
        return
    assert_rejection(
        send_request(port, "POST", "/other", [("content-type", JSON)], SAMPLE_JSON),
        "missing_signature",
    )
    resp = send_request(port, "GET", "/favicon.ico")
    assert_rejection(resp, "method_not_allowed")
    assert resp.header("allow") == "POST"
    assert_rejection(
        send_request(port, "POST", "/other?a=1", GENUINE, SAMPLE_JSON), "query_not_allowed"
    )
    wait_no_upstream_bytes(backend)
    # A genuine notification sent to an unlisted path is verified by the catch-all (auto scheme).
    resp = send_request(port, "POST", "/other", GENUINE, SAMPLE_JSON)
    assert resp.status == 200, resp.body
    (req,) = backend.wait_requests(1)
    assert req.header("x-lf-verified") == "md5; key=demo"
