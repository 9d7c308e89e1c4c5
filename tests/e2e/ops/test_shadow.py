"""Shadow mode. Failures are verified, counted and logged as in enforce mode, but the
request is forwarded (the backend receives it) marked `x-lf-verified: failed:<category>`;
shadow failures are counted separately and never as rejected. A route can override the mode."""

from __future__ import annotations

import os

import pytest

import harness
from e2eutil import envoy_fixture
from e2eutil import JSON, sig_json
from harness import send_request
from opsutil import cube_headers, lf_stats, nonzero, notification, post_md5

CONFIG = {
    "mode": "shadow",
    "keys": [
        {"id": "demo", "secret_env": "LF_WEBHOOK_SECRET", "schemes": ["md5"]},
        {"id_env": "LF_CUBE_KEY_ID", "secret_env": "LF_CUBE_KEY", "schemes": ["cube"]},
    ],
    "routes": [
        {"name": "linksfield", "path_prefix": "/linksfield/", "scheme": "md5"},
        {"name": "cube", "path_prefix": "/cube/", "scheme": "cube"},
        {"name": "enforced", "path_prefix": "/enforced/", "scheme": "md5", "mode": "enforce"},
    ],
    "max_body_bytes": 1024,
}


envoy = envoy_fixture(CONFIG)


# Buffer mode (LF_E2E_ENVOY_YAML=envoy/envoy-buffered.yaml): the headers leave before the verdict
# exists, so a shadow route forwards WITHOUT any x-lf-verified (never a "verified" value on a
# request that may have failed). Hold mode marks every forwarded request.
HOLD = harness.holds_headers(
    harness.REPO / os.environ.get("LF_E2E_ENVOY_YAML", str(harness.DEFAULT_YAML))
)


def forwarded(backend, resp, body, marker):
    """The backend answered (200) and received the request unchanged, marked once (hold mode)
    or not at all (buffer mode)."""
    assert resp.status == 200, (resp.status, resp.body)
    assert resp.json() == {"backend": "ok"}
    (req,) = backend.wait_requests(1)
    assert req.body == body
    assert req.header_all("x-lf-verified") == ([marker] if HOLD else [])
    return req


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow"])
def test_forged_is_forwarded_marked_and_counted(envoy, backend, slow):
    before = lf_stats(envoy)
    body = notification(1)
    forged = sig_json(body, "wrong-secret")
    resp = post_md5(envoy, "/linksfield/sms", body, sig=forged, slow=slow,
                    extra=[("x-lf-verified", "md5; key=demo"), ("x-request-id", f"rid-sh-{slow}")])
    req = forwarded(backend, resp, body, "failed:invalid_signature")
    assert req.header("x-lf-md5") == forged  # forwarded as sent
    after = lf_stats(envoy)
    assert after["shadow_failed.reason=invalid_signature"] == \
        before["shadow_failed.reason=invalid_signature"] + 1
    assert after["requests_total"] == before["requests_total"] + 1
    assert after["rejected.reason=invalid_signature"] == 0
    want = (f"rejected request_id=rid-sh-{slow} route=linksfield scheme=md5 partner=P123456 "
            "reason=invalid_signature status=401 mode=shadow action=forwarded")
    text = envoy.wait_for_log(lambda t: want in t)
    assert want in text and forged not in text


def test_every_failure_kind_is_forwarded(envoy, backend):
    port = envoy.listen_port
    body = notification(2)
    cases = [
        # (request, marker)
        (lambda: post_md5(envoy, "/linksfield/sms", body, sig=None), "failed:missing_signature"),
        # Decided at the end of the body: unmarked in buffer mode (the headers already left).
        (lambda: post_md5(envoy, "/linksfield/sms", b'{"a":', sig="AAAA"),
         "failed:malformed_body" if HOLD else None),
        (lambda: send_request(port, "POST", "/linksfield/sms",
                              [("content-type", "text/plain"), ("x-lf-md5", "AAAA")], b"hi"),
         "failed:unsupported_media_type"),
        (lambda: send_request(port, "PUT", "/linksfield/sms",
                              [("content-type", JSON), ("x-lf-md5", sig_json(body))], body),
         "failed:method_not_allowed"),
        # Signed with the wrong key value: decided at the end of the body too.
        (lambda: send_request(port, "POST", "/cube/n", cube_headers(body, key="nope"), body,
                              slow=True), "failed:invalid_signature" if HOLD else None),
    ]
    for send, marker in cases:
        backend.reset()
        resp = send()
        assert resp.status == 200, (marker, resp.status, resp.body)
        (req,) = backend.wait_requests(1)
        assert req.header_all("x-lf-verified") == ([marker] if marker else [])
    stats = nonzero(lf_stats(envoy))
    assert not any(k.startswith("rejected.") for k in stats), stats
    for kind in ("missing_signature", "malformed_body", "unsupported_media_type",
                 "method_not_allowed"):
        assert stats[f"shadow_failed.reason={kind}"] == 1, (kind, stats)


def test_genuine_keeps_its_verdict_in_shadow(envoy, backend):
    body = notification(3)
    forwarded(backend, post_md5(envoy, "/linksfield/sms", body, slow=True), body, "md5; key=demo")
    backend.reset()
    resp = send_request(envoy.listen_port, "POST", "/cube/n", cube_headers(body), body)
    forwarded(backend, resp, body, f"cube; key={harness.DEFAULT_CUBE_KEY_ID}")


def test_route_override_enforces(envoy, backend):
    before = lf_stats(envoy)
    body = notification(4)
    resp = post_md5(envoy, "/enforced/x", body, sig=sig_json(body, "wrong"), slow=True)
    assert resp.status == 401 and resp.json()["error"] == "invalid_signature"
    assert backend.total_bytes() == 0
    after = lf_stats(envoy)
    assert after["rejected.reason=invalid_signature"] == 1
    assert after["shadow_failed.reason=invalid_signature"] == \
        before["shadow_failed.reason=invalid_signature"]


def test_oversized_body_is_forwarded_in_shadow(envoy, backend):
    big = b'{"a":"' + b"x" * 2000 + b'"}'
    resp = send_request(envoy.listen_port, "POST", "/linksfield/sms",
                        [("content-type", JSON), ("x-lf-md5", sig_json(big))], big,
                        chunked=True, content_length=None)
    forwarded(backend, resp, big, "failed:body_too_large")
