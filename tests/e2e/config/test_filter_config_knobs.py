"""Plugin config knobs with a custom plugin JSON: path_exact, methods, first match wins,
several keys (inline and env), max_body_bytes, md5.empty_values=skip, md5.nested_values=raw."""

from __future__ import annotations

import time

import pytest

import harness
from e2eutil import running_envoy
from e2eutil import (
    FORM, JSON, SAMPLE_JSON, SECRET, assert_logged_warn, assert_rejection, json_body_of_size,
    md5_verified, sig_form, sig_json, wait_no_upstream_bytes,
)
from harness import send_request

INLINE_SECRET = "inl1ne-S3cret=&value"
LIMIT = 1024

CUSTOM = {
    "keys": [
        {"id": "demo", "secret_env": "LF_WEBHOOK_SECRET"},
        {"id": "inline", "secret": INLINE_SECRET},
    ],
    "routes": [
        {"name": "exact", "path_exact": "/hook", "methods": ["PUT"], "scheme": "md5"},
        {"name": "first", "path_prefix": "/multi/", "methods": ["GET"], "scheme": "md5"},
        {"name": "second", "path_prefix": "/multi/", "methods": ["POST"], "scheme": "md5"},
        {"name": "default-methods", "path_prefix": "/dm/", "scheme": "md5"},
    ],
    "max_body_bytes": LIMIT,
    "md5": {"empty_values": "skip", "nested_values": "raw"},
    # Other paths are forwarded (the neighbours test below).
    "posture": "route_list",
}


@pytest.fixture(scope="module")
def knobs(envoy_bin, wasm_path, envoy_yaml, backend_server):
    with running_envoy(
        backend_server, envoy_bin, wasm_path, envoy_yaml, plugin_config=CUSTOM
    ) as env:
        yield env


def post(env, path, body, sig, ctype=JSON, method="POST", slow=False, **kw):
    headers = [("content-type", ctype)] + ([("x-lf-md5", sig)] if sig else [])
    return send_request(env.listen_port, method, path, headers, body, slow=slow, **kw)


def accepted(backend, resp, body, key="demo"):
    assert resp.status == 200, (resp.status, resp.body)
    (req,) = backend.wait_requests(1)
    assert req.body == body
    # Every CUSTOM route has two md5 keys.
    assert req.header_all("x-lf-verified") == [md5_verified(key, sole_md5_key=False)]


# --- path_exact and methods


def test_exact_path_with_allowed_method(knobs, backend):
    accepted(backend, post(knobs, "/hook", SAMPLE_JSON, sig_json(SAMPLE_JSON), method="PUT"),
             SAMPLE_JSON)


def test_exact_path_rejects_query_string(knobs, backend):
    resp = post(knobs, "/hook?a=b", SAMPLE_JSON, None, method="PUT")
    assert_rejection(resp, "query_not_allowed")
    wait_no_upstream_bytes(backend)


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow"])
def test_exact_path_other_method_is_405_with_allow(knobs, backend, slow):
    resp = post(knobs, "/hook", SAMPLE_JSON, sig_json(SAMPLE_JSON), slow=slow)
    rid = assert_rejection(resp, "method_not_allowed")
    assert resp.header("allow") == "PUT"
    wait_no_upstream_bytes(backend)
    assert_logged_warn(knobs, "method_not_allowed", rid)


def test_exact_path_also_protects_trailing_slash(knobs, backend):
    # Many backends serve /hook/ as /hook: an alias, rejected (docs/protection.md).
    resp = post(knobs, "/hook/", SAMPLE_JSON, None, method="PUT")
    assert_rejection(resp, "non_canonical_path")
    wait_no_upstream_bytes(backend)


@pytest.mark.parametrize("path", ["/hook/x", "/hookx", "/hoo"])
def test_exact_path_does_not_protect_neighbours(knobs, backend, path):
    resp = send_request(knobs.listen_port, "POST", path, [("content-type", "text/plain")], b"x")
    assert resp.status == 200, resp.body
    (req,) = backend.wait_requests(1)
    assert req.path == path and req.body == b"x"


def test_first_matching_route_wins(knobs, backend):
    # "/multi/" is declared twice: GET first, then POST. POST must hit the first (GET-only).
    resp = post(knobs, "/multi/x", SAMPLE_JSON, sig_json(SAMPLE_JSON))
    assert_rejection(resp, "method_not_allowed")
    assert resp.header("allow") == "GET"
    wait_no_upstream_bytes(backend)


def test_first_route_allows_get_but_still_requires_signature(knobs, backend):
    resp = send_request(knobs.listen_port, "GET", "/multi/x")
    assert_rejection(resp, "missing_signature")
    wait_no_upstream_bytes(backend)


def test_methods_default_to_post(knobs, backend):
    resp = send_request(knobs.listen_port, "GET", "/dm/x")
    assert_rejection(resp, "method_not_allowed")
    assert resp.header("allow") == "POST"
    wait_no_upstream_bytes(backend)
    accepted(backend, post(knobs, "/dm/x", SAMPLE_JSON, sig_json(SAMPLE_JSON)), SAMPLE_JSON)


# --- several keys


@pytest.mark.parametrize("secret,key", [(SECRET, "demo"), (INLINE_SECRET, "inline")])
def test_each_configured_key_verifies_and_is_named(knobs, backend, secret, key):
    accepted(backend, post(knobs, "/dm/x", SAMPLE_JSON, sig_json(SAMPLE_JSON, secret)),
             SAMPLE_JSON, key=key)


def test_unknown_secret_rejected_with_several_keys(knobs, backend):
    resp = post(knobs, "/dm/x", SAMPLE_JSON, sig_json(SAMPLE_JSON, "nope"))
    assert_rejection(resp, "invalid_signature",
                     forbidden=(INLINE_SECRET, sig_json(SAMPLE_JSON, INLINE_SECRET)))
    wait_no_upstream_bytes(backend)


# --- max_body_bytes


def test_body_at_custom_limit_accepted(knobs, backend):
    body = json_body_of_size(LIMIT)
    accepted(backend, post(knobs, "/dm/x", body, sig_json(body), slow=True), body)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow"])
def test_body_over_custom_limit_413(knobs, backend, chunked, slow):
    body = json_body_of_size(LIMIT + 1)
    resp = post(knobs, "/dm/x", body, sig_json(body), slow=slow, chunked=chunked)
    rid = assert_rejection(resp, "body_too_large")
    wait_no_upstream_bytes(backend)
    assert_logged_warn(knobs, "body_too_large", rid)


# --- md5.empty_values = skip


@pytest.mark.parametrize("kind,body", [
    ("json", b'{"a":"1","b":"","c":"3"}'),
    ("form", b"a=1&b=&c=3"),
])
def test_empty_values_skip(knobs, backend, kind, body):
    ctype = JSON if kind == "json" else FORM
    sign = sig_json if kind == "json" else sig_form
    kept = post(knobs, "/dm/x", body, sign(body, empty_values="keep"), ctype=ctype)
    assert_rejection(kept, "invalid_signature")
    wait_no_upstream_bytes(backend)
    accepted(backend, post(knobs, "/dm/x", body, sign(body, empty_values="skip"), ctype=ctype),
             body)


# --- md5.nested_values = raw


NESTED = b'{"a":"1","n":{"y": 2,"x":[1, "z", null]},"l":[ ]}'


def test_nested_values_raw_signs_text_as_written(knobs, backend):
    accepted(backend, post(knobs, "/dm/x", NESTED, sig_json(NESTED, nested="raw")), NESTED)


def test_nested_values_raw_rejects_reserialised_text(knobs, backend):
    compact = sig_json(b'{"a":"1","n":{"y":2,"x":[1,"z",null]},"l":[]}', nested="raw")
    resp = post(knobs, "/dm/x", NESTED, compact)
    assert_rejection(resp, "invalid_signature")
    wait_no_upstream_bytes(backend)


def test_no_secret_in_log(knobs):
    time.sleep(0.2)
    log = knobs.log_text()
    assert "lf_webhook_guard" in log
    assert INLINE_SECRET not in log
    assert SECRET not in log
