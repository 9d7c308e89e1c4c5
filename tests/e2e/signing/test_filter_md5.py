"""The filter with the shipped config (envoy/envoy.yaml): x-lf-md5 on /linksfield/, POST only.

Every rejection is checked with a fast client (one write) and a slow client (headers, pause,
body), and the raw backend must see zero bytes.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field

import pytest

import lfsign
from e2eutil import (
    FORM, JSON, SAMPLE_FORM, SAMPLE_JSON, SECRET, assert_logged_warn, assert_rejection,
    envoy_fixture, json_body_of_size, sig_form, sig_json, wait_no_upstream_bytes,
)
import harness
from harness import send_request

PATH = "/linksfield/sms-uplink"
GOOD = sig_json(SAMPLE_JSON)
GOOD_HEX = base64.b64decode(GOOD).decode()
CANONICAL = lfsign.canonical_string(lfsign.params_from_json(SAMPLE_JSON), SECRET)
MAX = 65536


def _one_char_changed(s: str, i: int = 10) -> str:
    return s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]


def _one_byte_changed(body: bytes) -> bytes:
    i = body.index(b"1234\"")
    return body[:i] + b"5" + body[i + 1:]


@dataclass
class Case:
    id: str
    category: str
    headers: list
    body: bytes = b""
    method: str = "POST"
    path: str = PATH
    chunked: bool = False
    # strings that must never appear in the reply (beyond the secret)
    forbidden: tuple = field(default_factory=tuple)


def _h(ctype, *sigs):
    hdrs = [] if ctype is None else [("content-type", ctype)]
    return hdrs + [("x-lf-md5", s) for s in sigs]


BIG = json_body_of_size(MAX + 1)
TAMPERED = _one_byte_changed(SAMPLE_JSON)

REJECTIONS = [
    # --- 401 missing / invalid signature
    Case("no-signature-json", "missing_signature", _h(JSON), SAMPLE_JSON),
    Case("no-signature-form", "missing_signature", _h(FORM), SAMPLE_FORM),
    Case("signature-in-query-string", "query_not_allowed", _h(JSON), SAMPLE_JSON,
         path=PATH + "?x-lf-md5=" + GOOD),
    Case("wrong-secret", "invalid_signature", _h(JSON, sig_json(SAMPLE_JSON, "other-secret")),
         SAMPLE_JSON, forbidden=(GOOD, GOOD_HEX, CANONICAL)),
    Case("signature-of-other-body", "invalid_signature",
         _h(JSON, sig_json(b'{"a":"1"}')), SAMPLE_JSON, forbidden=(GOOD, GOOD_HEX, CANONICAL)),
    Case("tampered-body-one-byte", "invalid_signature", _h(JSON, GOOD), TAMPERED,
         forbidden=(sig_json(TAMPERED), base64.b64decode(sig_json(TAMPERED)).decode())),
    Case("tampered-header-one-char", "invalid_signature", _h(JSON, _one_char_changed(GOOD)),
         SAMPLE_JSON, forbidden=(GOOD, GOOD_HEX, CANONICAL)),
    Case("bad-base64", "invalid_signature", _h(JSON, "@" * 43 + "="), SAMPLE_JSON,
         forbidden=(GOOD, GOOD_HEX)),
    Case("wrong-length-truncated", "invalid_signature", _h(JSON, GOOD[:40]), SAMPLE_JSON),
    Case("wrong-length-extended", "invalid_signature", _h(JSON, GOOD[:-1] + "AAAA="),
         SAMPLE_JSON),
    Case("uppercase-hex", "invalid_signature",
         _h(JSON, base64.b64encode(GOOD_HEX.upper().encode()).decode()), SAMPLE_JSON),
    Case("raw-digest-bytes", "invalid_signature",
         _h(JSON, base64.b64encode(bytes.fromhex(GOOD_HEX)).decode()), SAMPLE_JSON),
    Case("signed-form-tampered", "invalid_signature",
         _h(FORM, sig_form(SAMPLE_FORM)), SAMPLE_FORM.replace(b"P123456", b"P123457")),
    Case("two-headers-both-genuine", "invalid_signature", _h(JSON, GOOD, GOOD), SAMPLE_JSON),
    Case("two-headers-genuine-and-bad", "invalid_signature",
         _h(JSON, GOOD, _one_char_changed(GOOD)), SAMPLE_JSON),
    Case("two-headers-bad-and-genuine", "invalid_signature",
         _h(JSON, _one_char_changed(GOOD), GOOD), SAMPLE_JSON),
    # --- 405
    Case("get", "method_not_allowed", _h(None, GOOD), b"", method="GET"),
    Case("put-signed", "method_not_allowed", _h(JSON, GOOD), SAMPLE_JSON, method="PUT"),
    # --- 415
    Case("text-plain", "unsupported_media_type", _h("text/plain", GOOD), SAMPLE_JSON),
    Case("no-content-type", "unsupported_media_type", _h(None, GOOD), SAMPLE_JSON),
    Case("json-body-declared-form", "unsupported_media_type", _h(FORM, GOOD), SAMPLE_JSON),
    # --- 400
    Case("form-body-declared-json", "malformed_body", _h(JSON, sig_form(SAMPLE_FORM)),
         SAMPLE_FORM),
    Case("malformed-json", "malformed_body", _h(JSON, GOOD), b'{"a":"1",'),
    Case("trailing-garbage", "malformed_body", _h(JSON, GOOD), b'{"a":"1"}x'),
    Case("top-level-array", "malformed_body", _h(JSON, GOOD), b'[{"a":"1"}]'),
    Case("top-level-string", "malformed_body", _h(JSON, GOOD), b'"a"'),
    Case("duplicate-key-json", "malformed_body", _h(JSON, GOOD), b'{"a":"1","a":"1"}'),
    Case("duplicate-key-form", "malformed_body", _h(FORM, GOOD), b"a=1&a=1"),
    Case("duplicate-key-json-after-unescape", "malformed_body", _h(JSON, GOOD),
         b'{"a":"1","\\u0061":"2"}'),
    Case("duplicate-key-form-after-decode", "malformed_body", _h(FORM, GOOD), b"a=1&%61=2"),
    Case("nested-object", "malformed_body", _h(JSON, GOOD), b'{"a":"1","n":{"b":"c"}}'),
    Case("nested-array", "malformed_body", _h(JSON, GOOD), b'{"a":"1","n":["b"]}'),
    Case("invalid-utf8-json", "malformed_body", _h(JSON, GOOD), b'{"a":"\xff"}'),
    Case("invalid-percent-encoding", "malformed_body", _h(FORM, GOOD), b"a=%zz&b=1"),
    Case("truncated-percent-encoding", "malformed_body", _h(FORM, GOOD), b"a=1&b=%2"),
    Case("empty-body-json", "malformed_body", _h(JSON, GOOD), b""),
    Case("empty-body-form", "malformed_body", _h(FORM, GOOD), b""),
    # --- 413
    Case("content-length-over-limit", "body_too_large", _h(JSON, sig_json(BIG)), BIG),
    Case("chunked-over-limit", "body_too_large", _h(JSON, sig_json(BIG)), BIG, chunked=True),
]


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow"])
@pytest.mark.parametrize("case", REJECTIONS, ids=lambda c: c.id)
def test_rejection_puts_zero_bytes_upstream(guard, backend, case, slow):
    rid = f"e2e-{case.id}-{'slow' if slow else 'fast'}-{uuid.uuid4().hex[:8]}"
    resp = send_request(
        guard.listen_port, case.method, case.path, case.headers + [("x-request-id", rid)],
        case.body, slow=slow, chunked=case.chunked,
    )
    answered = time.monotonic()
    request_id = assert_rejection(resp, case.category, forbidden=case.forbidden)
    assert request_id == rid  # Envoy keeps a client x-request-id; the filter reports it
    if case.category == "method_not_allowed":
        assert resp.header("allow") == "POST"
    assert_logged_warn(guard, case.category, request_id)
    wait_no_upstream_bytes(backend, since=answered)


def test_content_length_over_limit_is_decided_from_headers(guard, backend):
    """413 arrives while the client has sent only the headers (no body at all)."""
    import socket

    from harness import _read_response, build_request

    head, _ = build_request("POST", PATH, _h(JSON, GOOD), b"", content_length=MAX + 1)
    with socket.create_connection(("127.0.0.1", guard.listen_port), timeout=5) as s:
        s.settimeout(5)
        s.sendall(head)
        resp = _read_response(s)
    assert_rejection(resp, "body_too_large")
    wait_no_upstream_bytes(backend)


@pytest.mark.parametrize("rid", ['ab"}\\x<script>', "x" * 300, "id with spaces\t"])
def test_hostile_request_id_keeps_reply_json_and_log_line_safe(guard, backend, rid):
    resp = send_request(guard.listen_port, "POST", PATH,
                        [("content-type", JSON), ("x-request-id", rid)], SAMPLE_JSON)
    request_id = assert_rejection(resp, "missing_signature")  # parses the JSON body
    assert request_id != rid
    assert not set(request_id) & set('"\\<> \t'), request_id
    assert_logged_warn(guard, "missing_signature", request_id)
    assert rid not in guard.log_text()
    wait_no_upstream_bytes(backend)


# ---------------------------------------------------------------------------------------------
# Genuine requests
# ---------------------------------------------------------------------------------------------

GENUINE = [
    ("json", JSON, SAMPLE_JSON, sig_json(SAMPLE_JSON)),
    ("json-charset", JSON + "; charset=utf-8", SAMPLE_JSON, sig_json(SAMPLE_JSON)),
    ("json-charset-upper", "Application/JSON; Charset=UTF-8", SAMPLE_JSON, sig_json(SAMPLE_JSON)),
    ("form", FORM, SAMPLE_FORM, sig_form(SAMPLE_FORM)),
    ("form-charset", FORM + "; charset=utf-8", SAMPLE_FORM, sig_form(SAMPLE_FORM)),
    ("form-java-default", FORM + ";charset=UTF-8", SAMPLE_FORM, sig_form(SAMPLE_FORM)),
]


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow"])
@pytest.mark.parametrize("name,ctype,body,sig", GENUINE, ids=[g[0] for g in GENUINE])
def test_genuine_request_is_forwarded_verbatim(guard, backend, name, ctype, body, sig, slow):
    resp = send_request(
        guard.listen_port, "POST", PATH,
        [("content-type", ctype), ("x-lf-md5", sig), ("x-lf-delivery", "d-1")], body, slow=slow,
    )
    assert resp.status == 200, resp.body
    assert resp.json() == {"backend": "ok"}
    (req,) = backend.wait_requests(1)
    assert req.method == "POST" and req.path == PATH
    assert req.body == body
    assert req.header_all("x-lf-verified") == ["md5; key=demo"]
    assert req.header("x-lf-md5") == sig
    assert req.header("x-lf-delivery") == "d-1"
    assert req.header("content-type") == ctype


GENUINE_JSON_VALUES = [
    b'{"text_message":"\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80","sim_id":"1"}',
    b'{"text_message":"caf\\u00e9 \\"quoted\\" \\\\ \\/","sim_id":"1"}',
    b'{"empty":"","a":"1"}',
    b'{ "b" : "2" ,\n\t"a" : "a=b&c" }',
    b'{"\xc3\xa9":"x","e":"y","F":"z"}',
]
# Signed correctly, but ambiguous to a backend: JSON types the legacy signature does not carry
# (md5.value_types: strings, the default) and keys a Go backend reads as one.
AMBIGUOUS_JSON_VALUES = [
    b'{"n":1.50,"i":-0,"e":1E+3,"big":12345678901234567890123,"t":true,"f":false,"z":null}',
    b'{"\xc3\xa9":"x","e":"y","E":"z"}',
]


@pytest.mark.parametrize("body", AMBIGUOUS_JSON_VALUES, ids=range(len(AMBIGUOUS_JSON_VALUES)))
def test_signed_but_ambiguous_json_is_rejected(guard, backend, body):
    resp = send_request(guard.listen_port, "POST", PATH,
                        [("content-type", JSON), ("x-lf-md5", sig_json(body))], body)
    assert_rejection(resp, "malformed_body")
    wait_no_upstream_bytes(backend)


@pytest.mark.parametrize("body", GENUINE_JSON_VALUES, ids=range(len(GENUINE_JSON_VALUES)))
def test_genuine_json_value_rules(guard, backend, body):
    """lfsign.py (hashlib) signatures for numbers, booleans, null, unicode, escapes."""
    resp = send_request(guard.listen_port, "POST", PATH,
                        [("content-type", JSON), ("x-lf-md5", sig_json(body))], body)
    assert resp.status == 200, resp.body
    (req,) = backend.wait_requests(1)
    assert req.body == body
    assert req.header_all("x-lf-verified") == ["md5; key=demo"]


@pytest.mark.parametrize("body", [
    b"msg=hello+world%21&e=&x=%E2%82%AC%26%3D",
    b"b=2&a=1&c=%2B",
])
def test_genuine_form_value_rules(guard, backend, body):
    resp = send_request(guard.listen_port, "POST", PATH,
                        [("content-type", FORM), ("x-lf-md5", sig_form(body))], body)
    assert resp.status == 200, resp.body
    (req,) = backend.wait_requests(1)
    assert req.body == body


def test_body_exactly_at_limit_is_accepted(guard, backend):
    body = json_body_of_size(MAX)
    resp = send_request(guard.listen_port, "POST", PATH,
                        [("content-type", JSON), ("x-lf-md5", sig_json(body))], body, slow=True)
    assert resp.status == 200, resp.body
    (req,) = backend.wait_requests(1)
    assert req.body == body


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow"])
def test_genuine_chunked_request_is_forwarded(guard, backend, slow):
    body = json_body_of_size(20000)
    resp = send_request(guard.listen_port, "POST", PATH,
                        [("content-type", JSON), ("x-lf-md5", sig_json(body))], body,
                        chunked=True, slow=slow)
    assert resp.status == 200, resp.body
    (req,) = backend.wait_requests(1)
    assert req.body == body
    assert req.header_all("x-lf-verified") == ["md5; key=demo"]


# ---------------------------------------------------------------------------------------------
# x-lf-verified is the filter's alone
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow"])
def test_client_x_lf_verified_is_replaced_on_protected_route(guard, backend, slow):
    resp = send_request(
        guard.listen_port, "POST", PATH,
        [("x-lf-verified", "md5; key=evil"), ("content-type", JSON), ("x-lf-md5", GOOD),
         ("X-LF-Verified", "md5; key=evil2")],
        SAMPLE_JSON, slow=slow,
    )
    assert resp.status == 200, resp.body
    (req,) = backend.wait_requests(1)
    assert req.header_all("x-lf-verified") == ["md5; key=demo"]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_client_x_lf_verified_is_removed_on_unprotected_route(routes_guard, backend, method):
    body = b"" if method == "GET" else b"plain text, unsigned"
    resp = send_request(
        routes_guard.listen_port, method, "/other",
        [("x-lf-verified", "md5; key=evil"), ("content-type", "text/plain")], body,
    )
    assert resp.status == 200, resp.body
    (req,) = backend.wait_requests(1)
    assert req.header_all("x-lf-verified") == []
    assert req.body == body


# ---------------------------------------------------------------------------------------------
# Unprotected routes pass untouched (route-list posture, envoy/envoy-routes.yaml; the deny
# posture of envoy/envoy.yaml has none: test_posture.py)
# ---------------------------------------------------------------------------------------------

routes_guard = envoy_fixture(yaml_path=harness.REPO / "envoy" / "envoy-routes.yaml")

UNPROTECTED = [
    ("GET", "/other", [], b""),
    ("POST", "/other", [("content-type", "text/plain")], b"anything at all"),
    ("POST", "/other/linksfield/x", [("content-type", JSON)], b"[not json"),
    ("POST", "/other?next=/linksfield/x", [("content-type", JSON)], SAMPLE_JSON),
    ("POST", "/other", [("content-type", JSON), ("x-lf-md5", "garbage")], BIG),
]


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow"])
@pytest.mark.parametrize("method,path,headers,body", UNPROTECTED,
                         ids=[f"{m} {p}" if len(b) < MAX else f"{m} {p} big"
                              for m, p, _, b in UNPROTECTED])
def test_unprotected_route_passes_untouched(routes_guard, backend, method, path, headers, body,
                                           slow):
    resp = send_request(routes_guard.listen_port, method, path, headers + [("x-keep", "1")], body,
                        slow=slow)
    assert resp.status == 200, resp.body
    assert resp.json() == {"backend": "ok"}
    (req,) = backend.wait_requests(1)
    assert (req.method, req.path, req.body) == (method, path, body)
    assert req.header("x-keep") == "1"
    assert req.header_all("x-lf-verified") == []
    for k, v in headers:
        assert req.header(k) == v


# ---------------------------------------------------------------------------------------------
# After everything above: the filter still serves, and the secret never reached the log.
# ---------------------------------------------------------------------------------------------


def test_vm_still_alive_after_the_whole_module(guard, backend):
    resp = send_request(guard.listen_port, "POST", PATH,
                        [("content-type", JSON), ("x-lf-md5", GOOD)], SAMPLE_JSON)
    assert resp.status == 200, resp.body
    assert guard.running


def test_secret_never_in_envoy_log(guard):
    time.sleep(0.2)  # log flush interval is 50 ms
    log = guard.log_text()
    assert "wasm log" in log or "lf_webhook_guard" in log, "debug log looks empty"
    assert SECRET not in log
    assert CANONICAL not in log
    assert json.dumps(SECRET) not in log
