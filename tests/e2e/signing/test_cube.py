"""Cube scheme (`x-lf-signature`) with the shipped config: /cube/ verifies HMAC-SHA1 with the key
whose id and value come from LF_CUBE_KEY_ID / LF_CUBE_KEY (the harness sets the provider's
worked example). Signatures are made by lfsign.sign_cube (Python json + hmac).

Every rejection is sent by a fast and a slow client; the raw backend must see zero bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass, field

import pytest

import lfsign
from e2eutil import (
    CUBE_KEY, CUBE_KEY_ID, FORM, JSON, SAMPLE_JSON, assert_logged_warn, assert_rejection,
    cube_headers, header_of, json_body_of_size, now_ms, replace_header, sig_json,
    wait_no_upstream_bytes,
)
from harness import send_request

PATH = "/cube/notify"
EXAMPLE_BODY = b'{"name": "liguoli","age": 18}'
EXAMPLE_TS = "12345648444"
EXAMPLE_SIGNATURE = "Ou8a5lyzPjN86ikmLeFC/pnWR3hcrEXQWV8S+RY0DMjEN9ec="
EXAMPLE_HEADERS = [
    ("content-type", JSON),
    ("x-lf-notification-version", "1.0"),
    ("x-lf-algo", "HMAC-SHA1"),
    ("x-lf-timestamp", EXAMPLE_TS),
    ("x-lf-signature", EXAMPLE_SIGNATURE),
]


def _accepted(backend, resp, body, key_id=CUBE_KEY_ID):
    assert resp.status == 200, (resp.status, resp.body)
    (req,) = backend.wait_requests(1)
    assert req.body == body, "body must arrive byte-for-byte"
    assert req.header_all("x-lf-verified") == [f"cube; key={key_id}"]
    return req


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow"])
def test_provider_worked_example_is_accepted(guard, backend, slow):
    assert lfsign.sign_cube(EXAMPLE_BODY, CUBE_KEY_ID, CUBE_KEY, EXAMPLE_TS) == EXAMPLE_SIGNATURE
    resp = send_request(guard.listen_port, "POST", PATH, EXAMPLE_HEADERS, EXAMPLE_BODY, slow=slow)
    req = _accepted(backend, resp, EXAMPLE_BODY)
    # The Cube headers go upstream unchanged.
    for name, value in EXAMPLE_HEADERS:
        assert req.header_all(name) == [value]


GENUINE = {
    "nested-objects-arrays": (
        b'{"partner_code":"P1","event":{"type":"sms","data":{"z":[1,{"b":2,"a":[]}],"a":{}}},'
        b'"list":[3,2,1,"x",null,true,false]}'
    ),
    "unicode-escapes-and-raw-utf8": (
        '{"text":"caf\\u00e9 \\u4f60\\u597d \\ud83d\\ude00 \u20ac raw \u00fc",'
        '"\\u00e9key":"v","slash":"a\\/b/c","q":"say \\"hi\\" \\\\ ok","ctl":"l1\\nl2\\t\\u0001","del":"\\u007f\x7f","ls":"\\u2028\u2028"}'
    ).encode("utf-8"),
    "floats-as-written": b'{"price":1.50,"exp":1E+3,"neg":-0.0,"small":2.5e-10,"zero":0}',
    # The largest integers every runtime reads exactly (larger ones: test_unexact_numbers_...).
    "big-integers": (
        b'{"iccid":9007199254740991,"neg":-9007199254740991}'
    ),
    "white-space-and-key-order": b'\n{ "z" : 1 ,\r\n\t"a" : { "y" : [ 1 , 2 ] , "b" : "c" } }\n',
    "byte-wise-key-order": '{"b":1,"C":2,"\u00e9":3,"a":4,"_":5,"1":6}'.encode("utf-8"),
    "sms-uplink-shape": SAMPLE_JSON,
}


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow"])
@pytest.mark.parametrize("name", list(GENUINE))
def test_genuine_bodies_are_accepted_byte_for_byte(guard, backend, name, slow):
    body = GENUINE[name]
    resp = send_request(guard.listen_port, "POST", PATH, cube_headers(body), body, slow=slow)
    _accepted(backend, resp, body)


@pytest.mark.parametrize(
    "variant",
    ["algo-lower-case", "charset-utf8", "chunked", "other-version"],
)
def test_genuine_variants(guard, backend, variant):
    body = GENUINE["nested-objects-arrays"]
    kw, path = {}, PATH
    if variant == "algo-lower-case":  # matched case-insensitively, signed as sent
        headers = cube_headers(body, algo="hmac-sha1")
    elif variant == "charset-utf8":
        headers = cube_headers(body, ctype="application/json; charset=utf-8")
    elif variant == "chunked":
        headers, kw = cube_headers(body), {"chunked": True}
    else:
        headers = cube_headers(body, version="2.1")
    resp = send_request(guard.listen_port, "POST", path, headers, body, **kw)
    _accepted(backend, resp, body)


# ---------------------------------------------------------------------------------------------
# Rejections
# ---------------------------------------------------------------------------------------------

BODY = GENUINE["nested-objects-arrays"]
TS = str(now_ms())
GOOD = cube_headers(BODY, timestamp=TS)
GOOD_SIG = header_of(GOOD, "x-lf-signature")
GOOD_MAC = GOOD_SIG.split("/", 1)[1]
GOOD_MAC_HEX = base64.b64decode(GOOD_MAC).hex()
SIGNED_TEXT = lfsign.cube_signed_text(BODY, "1.0", "HMAC-SHA1", TS).decode()
# Never in a reply: the key, the expected signature/MAC, the signed text.
SECRETS = (CUBE_KEY, GOOD_MAC, GOOD_MAC_HEX, SIGNED_TEXT)


def _one_char_changed(s: str, i: int) -> str:
    return s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]


def _with(name, value, base=GOOD):
    return replace_header(base, name, value)


def _sha256_signed(body: bytes) -> list:
    """A correct HMAC-SHA256 signature declared as such: the algorithm is not accepted."""
    text = lfsign.cube_signed_text(body, "1.0", "HMAC-SHA256", TS)
    mac = base64.b64encode(hmac.new(CUBE_KEY.encode(), text, hashlib.sha256).digest()).decode()
    return _with("x-lf-signature", f"{CUBE_KEY_ID}/{mac}", _with("x-lf-algo", "HMAC-SHA256"))


TAMPERED = BODY.replace(b'"sms"', b'"smt"')
assert TAMPERED != BODY and len(TAMPERED) == len(BODY)
NUMBER_REWRITTEN = EXAMPLE_BODY.replace(b"18", b"18.0")  # same value, other literal text
DUP_TOP = b'{"a":1,"b":2,"a":1}'
DUP_NESTED = b'{"a":{"x":1,"y":2,"x":1}}'
DUP_IN_ARRAY = b'{"a":[{"x":1,"\\u0078":1}]}'


@dataclass
class Case:
    id: str
    category: str
    headers: list
    body: bytes = BODY
    method: str = "POST"
    chunked: bool = False
    forbidden: tuple = field(default_factory=lambda: SECRETS)


REJECTIONS = [
    # --- forged / tampered
    Case("body-one-byte", "invalid_signature", GOOD, TAMPERED),
    Case("number-literal-rewritten", "invalid_signature", EXAMPLE_HEADERS, NUMBER_REWRITTEN,
         forbidden=(CUBE_KEY,)),
    Case("mac-one-char", "invalid_signature",
         _with("x-lf-signature", CUBE_KEY_ID + "/" + _one_char_changed(GOOD_MAC, 5))),
    Case("mac-last-char", "invalid_signature",
         _with("x-lf-signature", CUBE_KEY_ID + "/" + _one_char_changed(GOOD_MAC, 26))),
    Case("timestamp-changed", "invalid_signature", _with("x-lf-timestamp", str(int(TS) + 1))),
    Case("version-changed", "invalid_signature", _with("x-lf-notification-version", "1.1")),
    Case("wrong-key", "invalid_signature", cube_headers(BODY, key="not-the-key", timestamp=TS)),
    Case("signed-by-other-body", "invalid_signature",
         _with("x-lf-signature", header_of(cube_headers(b'{"a":1}', timestamp=TS),
                                           "x-lf-signature"))),
    # --- key id
    Case("unknown-key-id", "invalid_signature",
         _with("x-lf-signature", "NoSuchKeyId0123456789/" + GOOD_MAC)),
    Case("key-id-case-changed", "invalid_signature",
         _with("x-lf-signature", CUBE_KEY_ID.lower() + "/" + GOOD_MAC)),
    Case("md5-only-key-id", "invalid_signature",
         _with("x-lf-signature", "demo/" + GOOD_MAC)),
    Case("no-key-id", "invalid_signature", _with("x-lf-signature", GOOD_MAC)),
    Case("empty-key-id", "invalid_signature", _with("x-lf-signature", "/" + GOOD_MAC)),
    # --- algorithm, header shape
    Case("algo-hmac-sha256", "invalid_signature", _sha256_signed(BODY)),
    Case("algo-empty", "invalid_signature", _with("x-lf-algo", "")),
    Case("mac-not-base64", "invalid_signature",
         _with("x-lf-signature", CUBE_KEY_ID + "/" + "!" * 27 + "=")),
    Case("mac-truncated", "invalid_signature", _with("x-lf-signature", GOOD_SIG[:-2])),
    Case("mac-sha256-length", "invalid_signature",
         _with("x-lf-signature", CUBE_KEY_ID + "/" + base64.b64encode(b"x" * 32).decode())),
    Case("timestamp-not-digits", "invalid_signature", _with("x-lf-timestamp", "1.5e12")),
    Case("timestamp-negative", "invalid_signature", _with("x-lf-timestamp", "-" + TS)),
    Case("signature-repeated", "invalid_signature", GOOD + [("x-lf-signature", GOOD_SIG)]),
    Case("timestamp-repeated", "invalid_signature", GOOD + [("x-lf-timestamp", TS)]),
    # --- missing headers
    Case("missing-version", "invalid_signature", _with("x-lf-notification-version", None)),
    Case("missing-algo", "invalid_signature", _with("x-lf-algo", None)),
    Case("missing-timestamp", "invalid_signature", _with("x-lf-timestamp", None)),
    Case("missing-signature", "missing_signature", _with("x-lf-signature", None)),
    Case("md5-header-instead", "missing_signature",
         _with("x-lf-signature", None) + [("x-lf-md5", sig_json(SAMPLE_JSON))], SAMPLE_JSON),
    # --- content type
    Case("form-content-type", "unsupported_media_type", _with("content-type", FORM)),
    Case("form-body-and-type", "unsupported_media_type", _with("content-type", FORM),
         b"a=1&b=2"),
    Case("text-plain", "unsupported_media_type", _with("content-type", "text/plain")),
    Case("no-content-type", "unsupported_media_type", _with("content-type", None)),
    # --- body
    Case("duplicate-key-top", "malformed_body", cube_headers(b'{"a":1,"b":2}', timestamp=TS),
         DUP_TOP),
    Case("duplicate-key-nested", "malformed_body", cube_headers(b'{"a":{"x":1,"y":2}}',
                                                                timestamp=TS), DUP_NESTED),
    Case("duplicate-key-in-array-after-unescape", "malformed_body", GOOD, DUP_IN_ARRAY),
    Case("malformed-json", "malformed_body", GOOD, BODY[:-1]),
    Case("trailing-data", "malformed_body", GOOD, BODY + b"x"),
    Case("top-level-array", "malformed_body", GOOD, b"[" + BODY + b"]"),
    Case("invalid-utf8", "malformed_body", GOOD, b'{"a":"\xff"}'),
    Case("empty-body", "malformed_body", GOOD, b""),
    Case("too-large", "body_too_large", GOOD, json_body_of_size(65537)),
    Case("too-large-chunked", "body_too_large", GOOD, json_body_of_size(65537), chunked=True),
    # --- method
    Case("get", "method_not_allowed", GOOD, b"", method="GET"),
]


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow"])
@pytest.mark.parametrize("case", REJECTIONS, ids=lambda c: c.id)
def test_rejection_puts_zero_bytes_upstream(guard, backend, case, slow):
    rid = f"e2e-cube-{case.id}-{'slow' if slow else 'fast'}-{uuid.uuid4().hex[:8]}"
    resp = send_request(
        guard.listen_port, case.method, PATH, case.headers + [("x-request-id", rid)],
        case.body, slow=slow, chunked=case.chunked,
    )
    answered = time.monotonic()
    assert assert_rejection(resp, case.category, forbidden=case.forbidden) == rid
    assert_logged_warn(guard, case.category, rid)
    wait_no_upstream_bytes(backend, since=answered)


def test_cube_signature_does_not_open_the_md5_route(guard, backend):
    """A genuine Cube notification sent to the legacy route is not accepted there."""
    resp = send_request(guard.listen_port, "POST", "/linksfield/sms", GOOD, BODY)
    assert_rejection(resp, "missing_signature", forbidden=SECRETS)
    wait_no_upstream_bytes(backend)


def test_freshness_is_off_by_default(guard, backend):
    """The demo config has no freshness window: year-old timestamps still verify (retries)."""
    old = now_ms() - 400 * 24 * 3600 * 1000
    body = b'{"partner_code":"P1","received_at":"%d"}' % old
    resp = send_request(guard.listen_port, "POST", PATH, cube_headers(body, timestamp=old), body)
    _accepted(backend, resp, body)
    backend.reset()
    headers = [("content-type", JSON), ("x-lf-md5", sig_json(body))]
    resp = send_request(guard.listen_port, "POST", "/linksfield/sms", headers, body)
    assert resp.status == 200, (resp.status, resp.body)
    (req,) = backend.wait_requests(1)
    assert req.body == body
    assert req.header_all("x-lf-verified") == ["md5; key=demo"]


def test_query_string_is_rejected(guard, backend):
    """Queries are not signed (and backends read them): 400 before anything goes upstream."""
    body = GENUINE["nested-objects-arrays"]
    resp = send_request(guard.listen_port, "POST", PATH + "?a=1", cube_headers(body), body, slow=True)
    assert_rejection(resp, "query_not_allowed")
    wait_no_upstream_bytes(backend)


@pytest.mark.parametrize("number", ["89860220190123456789", "123456789012345678901234567890",
                                    "-9223372036854775809", "1e400", "1.2345678901234567"])
def test_unexact_numbers_are_rejected(guard, backend, number):
    """Signed as text, but Node, PHP and Go read another value (or none): malformed."""
    body = ('{"iccid":%s,"sim_id":"1"}' % number).encode()
    resp = send_request(guard.listen_port, "POST", PATH, cube_headers(body), body, slow=True)
    assert_rejection(resp, "malformed_body")
    wait_no_upstream_bytes(backend)
