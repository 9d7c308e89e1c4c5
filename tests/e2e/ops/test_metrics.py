"""The filter's Envoy counters after a scripted mix of requests match the mix exactly
(per reason, per scheme and key, unsigned, unprotected not counted), Prometheus labels come
from the shipped stats_tags, and the rejection log line carries route/scheme/partner/reason."""

from __future__ import annotations

import re
from collections import Counter

import pytest

import harness
from e2eutil import envoy_fixture
from e2eutil import JSON, SECRET, json_body_of_size, sig_json
from harness import send_request
from opsutil import cube_headers, lf_stats, nonzero, notification, post_md5

SECOND = "second-S3cret=&x"
P1 = "p1-secret"
CONFIG = {
    "keys": [
        {"id": "demo", "secret_env": "LF_WEBHOOK_SECRET", "schemes": ["md5"]},
        {"id": "second.key-2", "secret": SECOND, "schemes": ["md5"]},
        {"id_env": "LF_CUBE_KEY_ID", "secret_env": "LF_CUBE_KEY", "schemes": ["cube"]},
        {"id": "p1", "secret": P1, "partners": ["P1"], "schemes": ["md5"]},
    ],
    "exempt": [{"path_exact": "/health"}],
    "routes": [
        {"name": "linksfield", "path_prefix": "/linksfield/", "keys": ["demo", "second.key-2"]},
        {"name": "cube", "path_prefix": "/cube/", "scheme": "cube"},
        {"name": "plan", "path_prefix": "/plan/", "allow_unsigned": True, "keys": ["demo"]},
        {"name": "partner", "path_prefix": "/partner/", "keys": ["p1"]},
        {"name": "fresh", "path_prefix": "/fresh/", "scheme": "cube",
         "freshness": {"max_age_seconds": 600}},
    ],
    "max_body_bytes": 1024,
}
VERDICT_RS = harness.REPO / "src" / "verdict.rs"


def categories_in_verdict_rs() -> list[str]:
    """Every Reason category in src/verdict.rs (so reasons added later are covered too)."""
    text = VERDICT_RS.read_text()
    body = text[text.index("pub const fn category"):]
    body = body[: body.index("\n    }\n")]
    cats = re.findall(r'Reason::\w+ => "([a-z0-9_]+)"', body)
    assert len(cats) >= 9, cats
    return cats


envoy = envoy_fixture(CONFIG)


def test_every_counter_is_defined_at_zero(envoy):
    stats = lf_stats(envoy)
    for cat in categories_in_verdict_rs():
        assert stats.get(f"rejected.reason={cat}") == 0, cat
        assert stats.get(f"shadow_failed.reason={cat}") == 0, cat
    for name in ("requests_total", "unsigned_allowed", "duplicates_answered",
                 "dedup_recorded", "dedup_evictions",
                 "verified.scheme=md5.key=demo", "verified.scheme=md5.key=second.key-2",
                 f"verified.scheme=cube.key={harness.DEFAULT_CUBE_KEY_ID}",
                 "verified.scheme=md5.key=p1"):
        assert stats.get(name) == 0, name
    # keys only get counters for the schemes they can verify
    assert "verified.scheme=cube.key=demo" not in stats


def test_counters_match_a_scripted_mix(envoy, backend):
    port = envoy.listen_port
    statuses: Counter = Counter()

    def run(resp, expected):
        assert resp.status == expected, (resp.status, resp.body)
        statuses[expected] += 1

    # verified: md5/demo x3 (one slow), md5/second x2, cube x2 (one slow), md5/demo on /plan/ x1
    for i, slow in ((1, False), (2, True), (3, False)):
        run(post_md5(envoy, "/linksfield/sms", notification(i), slow=slow), 200)
    for i in (4, 5):
        run(post_md5(envoy, "/linksfield/sms", notification(i), secret=SECOND), 200)
    for i, slow in ((6, False), (7, True)):
        body = notification(i)
        run(send_request(port, "POST", "/cube/n", cube_headers(body), body, slow=slow), 200)
    run(post_md5(envoy, "/plan/order", notification(8)), 200)
    # unsigned but allowed x2
    for i in (9, 10):
        run(post_md5(envoy, "/plan/order", notification(i), sig=None), 200)
    # rejections
    run(post_md5(envoy, "/linksfield/sms", notification(11), sig=None), 401)  # missing
    run(post_md5(envoy, "/cube/n", notification(12), sig=None), 401)  # missing (cube)
    forged = sig_json(notification(13), "wrong-secret")
    run(post_md5(envoy, "/linksfield/sms", notification(13), sig=forged), 401)  # invalid
    run(post_md5(envoy, "/linksfield/sms", notification(14), sig=forged, slow=True), 401)
    bad = cube_headers(notification(15), key="not-the-key")
    run(send_request(port, "POST", "/cube/n", bad, notification(15)), 401)  # invalid (cube)
    run(post_md5(envoy, "/linksfield/sms", b'{"a":', sig=forged), 400)  # malformed
    run(send_request(port, "POST", "/linksfield/sms",
                     [("content-type", "text/plain"), ("x-lf-md5", forged)], b"hi"), 415)
    run(send_request(port, "GET", "/linksfield/sms", [("x-lf-md5", forged)]), 405)
    big = json_body_of_size(2048)
    run(post_md5(envoy, "/linksfield/sms", big), 413)  # content-length above the limit
    run(send_request(port, "POST", "/linksfield/sms",
                     [("content-type", JSON), ("x-lf-md5", sig_json(big))], big,
                     chunked=True, content_length=None), 413)  # buffered body above it
    p2 = notification(16, partner="P2")
    run(post_md5(envoy, "/partner/x", p2, sig=sig_json(p2, P1)), 403)  # partner_not_allowed
    old = notification(17)
    run(send_request(port, "POST", "/fresh/x", cube_headers(old), old), 401)  # stale
    # exempt: passes, not counted
    for _ in range(2):
        run(send_request(port, "GET", "/health"), 200)

    expected = {
        "verified.scheme=md5.key=demo": 4,
        "verified.scheme=md5.key=second.key-2": 2,
        f"verified.scheme=cube.key={harness.DEFAULT_CUBE_KEY_ID}": 2,
        "unsigned_allowed": 2,
        "rejected.reason=missing_signature": 2,
        "rejected.reason=invalid_signature": 3,
        "rejected.reason=malformed_body": 1,
        "rejected.reason=unsupported_media_type": 1,
        "rejected.reason=method_not_allowed": 1,
        "rejected.reason=body_too_large": 2,
        "rejected.reason=partner_not_allowed": 1,
        "rejected.reason=stale_notification": 1,
    }
    expected["requests_total"] = sum(expected.values())
    assert expected["requests_total"] == 22
    assert nonzero(lf_stats(envoy)) == expected
    # the backend got exactly the accepted ones (8 verified + 2 unsigned + 2 /health)
    assert len(backend.wait_requests(12)) == 12

    # Prometheus: dimensions as labels (envoy/envoy.yaml stats_config.stats_tags)
    status, text = envoy.admin_get("/stats/prometheus")
    assert status == 200
    for line in (
        'lf_webhook_guard_requests_total{} 22',
        'lf_webhook_guard_rejected{lf_reason="invalid_signature"} 3',
        'lf_webhook_guard_rejected{lf_reason="internal_error"} 0',
        'lf_webhook_guard_shadow_failed{lf_reason="invalid_signature"} 0',
        'lf_webhook_guard_verified{lf_scheme="md5",lf_key="demo"} 4',
        'lf_webhook_guard_verified{lf_scheme="md5",lf_key="second.key-2"} 2',
        f'lf_webhook_guard_verified{{lf_scheme="cube",lf_key="{harness.DEFAULT_CUBE_KEY_ID}"}} 2',
        'lf_webhook_guard_unsigned_allowed{} 2',
    ):
        assert line in text.splitlines(), line


def test_rejection_log_line_has_fields_and_no_signature(envoy, backend):
    body = notification(21, partner="P77")
    forged = sig_json(body, "wrong-secret")
    resp = post_md5(envoy, "/linksfield/sms", body, sig=forged, extra=[("x-request-id", "rid-ops-1")])
    assert resp.status == 401
    want = ("lf-webhook-guard: rejected request_id=rid-ops-1 route=linksfield scheme=md5 "
            "partner=P77 reason=invalid_signature status=401 mode=enforce action=local_reply "
            'detail="signature mismatch"')
    text = envoy.wait_for_log(lambda t: want in t)
    (line,) = [l for l in text.splitlines() if want in l]
    assert "[warning]" in line
    assert forged not in text and SECRET not in text
    # accepted: one debug line with the key id
    resp = post_md5(envoy, "/linksfield/sms", body, extra=[("x-request-id", "rid-ops-2")])
    assert resp.status == 200
    text = envoy.wait_for_log(lambda t: "accepted request_id=rid-ops-2" in t)
    (line,) = [l for l in text.splitlines() if "accepted request_id=rid-ops-2" in l]
    assert "[debug]" in line and 'verified="md5; key=demo"' in line
    assert sig_json(body) not in text


def test_log_level_from_config(start_envoy, backend):
    e = start_envoy(plugin_config={**CONFIG, "log_level": "warn"})
    e.start()
    body = notification(31)
    ok = post_md5(e, "/linksfield/sms", body, extra=[("x-request-id", "rid-lvl-ok")])
    bad = post_md5(e, "/linksfield/sms", body, sig=sig_json(body, "x"),
                   extra=[("x-request-id", "rid-lvl-bad")])
    assert (ok.status, bad.status) == (200, 401)
    text = e.wait_for_log(lambda t: "request_id=rid-lvl-bad" in t)
    assert "rejected request_id=rid-lvl-bad" in text
    assert "rid-lvl-ok" not in text, "debug line logged although log_level is warn"
    assert "lf-webhook-guard: configured:" not in text, "info line logged although log_level is warn"


def test_bad_log_level_fails_configuration(start_envoy):
    e = start_envoy(plugin_config={**CONFIG, "log_level": "loud"})
    e.expect_start_failure()
    assert "log_level: unknown level `loud`" in e.log_text()
