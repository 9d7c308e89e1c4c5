"""The backend acts only on what was signed: the seven findings of the integrity review, each
end to end in real Envoy (what the backend receives is what was verified, or nothing at all).

1. a query string on a protected route: 400 `query_not_allowed` (unless the route allows it);
2. keys a backend parser folds into one (`PARTNER_CODE` for Go, `partner.code` for PHP):
   400 `malformed_body`, even when signed with a valid key;
3. `x_lf_verified` (underscore) never reaches the backend as a verdict, nor do rewrite headers;
4. de-duplication identity includes method, path and query: a copy sent to another query cannot
   mark the real delivery done;
5. JSON value types in the legacy scheme: a boolean, number or null is 400 (`value_types: strings`,
   the default), accepted with `any`;
6. any `Content-Encoding` but `identity`: 415 `unsupported_encoding`;
7. configuration errors never show a secret value, in Envoy's log or in `check-config`.

test_parsers.py checks the same against real parsers of four runtimes.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import zlib
from pathlib import Path

import pytest
import yaml

import harness
from e2eutil import (
    FORM, JSON, SAMPLE_JSON, assert_rejection, envoy_fixture, running_envoy, sig_form, sig_json,
    wait_no_upstream_bytes,
)
from harness import send_request

S1, S2 = "partner-one-secret=1", "partner-two-secret=2"
PARTNERS = {
    "keys": [
        {"id": "p1", "secret": S1, "partners": ["P1"], "schemes": ["md5"]},
        {"id": "p2", "secret": S2, "partners": ["P2"], "schemes": ["md5"]},
    ],
    "routes": [
        {"name": "lf", "path_prefix": "/linksfield/", "scheme": "md5",
         "allowed_queries": ["registered=1"]},
    ],
    "max_body_bytes": 65536,
}
partners = envoy_fixture(PARTNERS)


def post(envoy, path, body, headers, **kw):
    return send_request(envoy.listen_port, "POST", path, headers, body, slow=True, **kw)


# 1. ---------------------------------------------------------------------------------------

def test_query_on_protected_route_is_rejected(guard, backend):
    good = [("content-type", JSON), ("x-lf-md5", sig_json(SAMPLE_JSON))]
    resp = post(guard, "/linksfield/sms?partner_code=P666666", SAMPLE_JSON, good)
    assert_rejection(resp, "query_not_allowed")
    resp = post(guard, "/linksfield/sms?", SAMPLE_JSON, good)
    assert_rejection(resp, "query_not_allowed")
    wait_no_upstream_bytes(backend)
    assert post(guard, "/linksfield/sms", SAMPLE_JSON, good).status == 200


def test_allowed_query_passes_exactly(partners, backend):
    body = b'{"partner_code":"P1","sim_id":"1"}'
    hdrs = [("content-type", JSON), ("x-lf-md5", sig_json(body, S1))]
    assert post(partners, "/linksfield/sms?registered=1", body, hdrs).status == 200
    (req,) = backend.wait_requests(1)
    assert req.path == "/linksfield/sms?registered=1"
    backend.reset()
    for q in ["registered=1&partner_code=P2", "registered=2", "Registered=1"]:
        assert_rejection(post(partners, f"/linksfield/sms?{q}", body, hdrs), "query_not_allowed")
    wait_no_upstream_bytes(backend)


# 2. ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("body,media", [
    (b'{"partner_code":"P1","sim_id":"1","PARTNER_CODE":"P2"}', "json"),
    (b'{"partner_code":"P1","sim_id":"1","Partner_Code":"P2"}', "json"),
    (b'{"partner_code":"P1","sim_id":"1","\\u017fim_id":"2"}', "json"),
    (b"partner_code=P1&sim_id=1&partner.code=P2", "form"),
    (b"partner_code=P1&sim_id=1&partner+code=P2", "form"),
    (b"partner_code=P1&sim_id=1&partner%5Bcode=P2", "form"),
    (b"partner_code=P1&sim_id=1&partner_code%5B%5D=P2", "form"),
], ids=["json-upper", "json-mixed", "json-long-s", "form-dot", "form-space", "form-bracket",
        "form-array"])
def test_keys_a_backend_folds_together_are_rejected(partners, backend, body, media):
    sig = sig_json(body, S1) if media == "json" else sig_form(body, S1)
    ctype = JSON if media == "json" else FORM
    resp = post(partners, "/linksfield/sms", body, [("content-type", ctype), ("x-lf-md5", sig)])
    assert_rejection(resp, "malformed_body")
    wait_no_upstream_bytes(backend)


def test_partner_keys_still_work(partners, backend):
    body = b'{"partner_code":"P1","sim_id":"1"}'
    resp = post(partners, "/linksfield/sms", body, [("content-type", JSON), ("x-lf-md5", sig_json(body, S1))])
    assert resp.status == 200, resp.body


# 3. ---------------------------------------------------------------------------------------

def _allow_underscores(src: Path, dst: Path) -> Path:
    cfg = yaml.safe_load(src.read_text())
    (hcm,) = harness._http_connection_managers(cfg)
    assert hcm.pop("common_http_protocol_options")["headers_with_underscores_action"] == "DROP_HEADER"
    dst.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dst


@pytest.fixture(scope="module")
def underscores(envoy_bin, wasm_path, backend_server, tmp_path_factory):
    """envoy/envoy-routes.yaml without Envoy's underscore drop: the filter's own strip alone."""
    yaml_path = _allow_underscores(
        harness.REPO / "envoy" / "envoy-routes.yaml", tmp_path_factory.mktemp("u") / "envoy.yaml"
    )
    with running_envoy(backend_server, envoy_bin, wasm_path, yaml_path) as env:
        yield env


ALIASES = [
    ("x_lf_verified", "md5; key=evil"),
    ("X-LF_Verified", "md5; key=evil"),
    ("x-original-url", "/linksfield/sms"),
    ("x_original_url", "/linksfield/sms"),
    ("X-HTTP-Method-Override", "DELETE"),
    ("x-forwarded-prefix", "/linksfield"),
]


@pytest.mark.parametrize("path", ["/other", "/linksfield/sms"])
def test_verdict_and_rewrite_header_aliases_never_reach_the_backend(underscores, backend, path):
    good = [("content-type", JSON), ("x-lf-md5", sig_json(SAMPLE_JSON))]
    resp = post(underscores, path, SAMPLE_JSON, good + ALIASES)
    assert resp.status == 200, resp.body
    (req,) = backend.wait_requests(1)
    names = {k.lower().replace("_", "-") for k, _ in req.headers}
    assert not names & {"x-original-url", "x-http-method-override", "x-forwarded-prefix"}, names
    verdicts = [v for k, v in req.headers if k.lower().replace("_", "-") == "x-lf-verified"]
    assert verdicts == ([] if path == "/other" else ["md5; key=demo"]), req.headers


def test_shipped_config_drops_underscore_headers_everywhere(guard, backend):
    # /linksfield/health skips the filter in Envoy's route table: Envoy's own drop covers it.
    resp = send_request(guard.listen_port, "GET", "/linksfield/health", [("x_lf_verified", "md5; key=evil")])
    assert resp.status == 200
    backend.wait_requests(1)
    assert b"verified" not in backend.raw().lower()


# 4. ---------------------------------------------------------------------------------------

DEDUP = dict(PARTNERS, dedup={"window_seconds": 60, "max_entries": 64},
             routes=[dict(PARTNERS["routes"][0], allowed_queries=["dry_run=1"])])
dedup = envoy_fixture(DEDUP)


def test_dedup_cannot_be_poisoned_by_a_copy_to_another_query(dedup, backend):
    body = b'{"partner_code":"P1","sim_id":"poison-1"}'
    hdrs = [("content-type", JSON), ("x-lf-md5", sig_json(body, S1))]
    # The real delivery fails once (the provider will retry it).
    backend.fail_next(503)
    assert post(dedup, "/linksfield/sms", body, hdrs).status == 503
    # An attacker replays the capture to a harmless variant that answers 200...
    assert post(dedup, "/linksfield/sms?dry_run=1", body, hdrs).status == 200
    # ... and the provider's retry still reaches the real handler.
    resp = post(dedup, "/linksfield/sms", body, hdrs)
    assert resp.status == 200 and resp.header("x-lf-duplicate") is None, resp.body
    reqs = backend.wait_requests(3)
    assert [r.path for r in reqs] == ["/linksfield/sms", "/linksfield/sms?dry_run=1", "/linksfield/sms"]
    # Only now is the real delivery a duplicate.
    resp = post(dedup, "/linksfield/sms", body, hdrs)
    assert resp.status == 200 and resp.header("x-lf-duplicate") == "true"
    assert len(backend.requests()) == 3


# 5. ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    b'{"sim_id":"1","suspend":false}', b'{"sim_id":"1","suspend":true}', b'{"sim_id":"1","n":0}',
    b'{"sim_id":"1","n":1.5}', b'{"sim_id":"1","z":null}',
])
def test_non_string_values_are_rejected_by_default(guard, backend, body):
    resp = post(guard, "/linksfield/sms", body, [("content-type", JSON), ("x-lf-md5", sig_json(body))])
    assert_rejection(resp, "malformed_body")
    wait_no_upstream_bytes(backend)


any_types = envoy_fixture(dict(PARTNERS, md5={"value_types": "any"}))


def test_value_types_any_accepts_them(any_types, backend):
    body = b'{"partner_code":"P1","suspend":false,"n":0}'
    resp = post(any_types, "/linksfield/sms", body, [("content-type", JSON), ("x-lf-md5", sig_json(body, S1))])
    assert resp.status == 200, resp.body


# 6. ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding,encode", [
    ("gzip", gzip.compress), ("deflate", zlib.compress), ("br", lambda b: b), ("GZIP", gzip.compress),
    ("identity, gzip", gzip.compress),
])
def test_content_encoding_is_rejected(guard, backend, encoding, encode):
    # Signed over the decoded text, as a sender that compresses would: the filter never sees it.
    hdrs = [("content-type", JSON), ("x-lf-md5", sig_json(SAMPLE_JSON)), ("content-encoding", encoding)]
    resp = post(guard, "/linksfield/sms", encode(SAMPLE_JSON), hdrs)
    assert_rejection(resp, "unsupported_encoding")
    wait_no_upstream_bytes(backend)


def test_identity_encoding_passes(guard, backend):
    hdrs = [("content-type", JSON), ("x-lf-md5", sig_json(SAMPLE_JSON)), ("content-encoding", "identity")]
    assert post(guard, "/linksfield/sms", SAMPLE_JSON, hdrs).status == 200


# 7. ---------------------------------------------------------------------------------------

PASTED = "xGl64jNW4B223SSDAsddgh=n"
LEAKY = [
    ("secret-as-number", {"keys": [{"id": "k", "secret": 918273645}]}, "keys[0].secret", "918273645"),
    ("secret-in-secret-env", {"keys": [{"id": "k", "secret_env": PASTED}]}, "keys[0].secret_env", PASTED),
    ("secret-list", {"keys": [{"id": "k", "secret": [PASTED]}]}, "keys[0].secret", PASTED),
]


@pytest.mark.parametrize("cfg,field,value", [c[1:] for c in LEAKY], ids=[c[0] for c in LEAKY])
def test_config_errors_never_show_the_secret(start_envoy, backend, cfg, field, value):
    envoy = start_envoy(plugin_config=cfg, ready_timeout=15)
    assert envoy.expect_start_failure() != 0
    log = envoy.log_text()
    assert field in log, envoy.log_tail()
    assert value not in log
    cli = os.environ.get("LF_CLI") or str(harness.REPO / "target" / "release" / "lf-webhook-guard")
    assert Path(cli).is_file(), f"{cli} missing: run `make build`"
    path = envoy.workdir / "plugin.json"
    path.write_text(json.dumps(cfg))
    for args in (["check-config", str(path)], ["check-config", "--json", str(path)]):
        out = subprocess.run([cli, *args], capture_output=True, text=True, timeout=30)
        assert out.returncode != 0 and field in out.stdout + out.stderr, out
        assert value not in out.stdout + out.stderr
    assert backend.total_bytes() == 0
