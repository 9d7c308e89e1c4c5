"""Edge de-duplication. A verified delivery is answered locally (200 duplicate) only
after the backend answered an identical one 2xx; a failed earlier copy means the next one is
forwarded; entries expire after the window; a small table stays bounded (oldest evicted, i.e.
forwarded again) and Envoy stays healthy; forged copies are never answered 200."""

from __future__ import annotations

import time

import pytest

import harness
from e2eutil import envoy_fixture
from e2eutil import sig_json
from harness import send_request
from opsutil import cube_headers, lf_stats, notification, post_md5

CONFIG = {
    "keys": [
        {"id": "demo", "secret_env": "LF_WEBHOOK_SECRET", "schemes": ["md5"]},
        {"id_env": "LF_CUBE_KEY_ID", "secret_env": "LF_CUBE_KEY", "schemes": ["cube"]},
    ],
    "dedup": {"window_seconds": 3600, "max_entries": 1000},
    "routes": [
        {"name": "linksfield", "path_prefix": "/linksfield/"},
        {"name": "cube", "path_prefix": "/cube/", "scheme": "cube"},
        {"name": "short", "path_prefix": "/short/", "dedup": {"window_seconds": 1}},
        {"name": "small", "path_prefix": "/small/",
         "dedup": {"window_seconds": 3600, "max_entries": 16}},
        {"name": "off", "path_prefix": "/off/", "dedup": False},
        {"name": "shadow", "path_prefix": "/shadow/", "mode": "shadow"},
    ],
}


envoy = envoy_fixture(CONFIG)


def is_duplicate_reply(resp) -> bool:
    if resp.header("x-lf-duplicate") is None:
        assert resp.json() == {"backend": "ok"} or resp.status != 200, resp.body
        return False
    assert resp.status == 200
    assert resp.header("x-lf-duplicate") == "true"
    doc = resp.json()
    assert doc["status"] == "duplicate" and set(doc) == {"status", "request_id"}, doc
    return True


def test_second_identical_delivery_is_answered_locally_after_2xx(envoy, backend):
    before = lf_stats(envoy)
    body = notification(1)
    first = post_md5(envoy, "/linksfield/sms", body)
    assert first.status == 200 and not is_duplicate_reply(first)
    backend.wait_requests(1)
    for slow in (False, True):
        again = post_md5(envoy, "/linksfield/sms", body, slow=slow)
        assert is_duplicate_reply(again)
    time.sleep(0.2)
    assert len(backend.requests()) == 1, "a duplicate reached the backend"
    after = lf_stats(envoy)
    assert after["duplicates_answered"] - before["duplicates_answered"] == 2
    assert after["dedup_recorded"] - before["dedup_recorded"] == 1
    # duplicates are verified deliveries: they count as verified too
    assert after["verified.scheme=md5.key=demo"] - before["verified.scheme=md5.key=demo"] == 3
    # a different delivery (other body) is forwarded
    other = post_md5(envoy, "/linksfield/sms", notification(2))
    assert not is_duplicate_reply(other)
    assert len(backend.wait_requests(2)) == 2


def test_forged_copy_of_a_recorded_delivery_is_rejected(envoy, backend):
    body = notification(3)
    assert not is_duplicate_reply(post_md5(envoy, "/linksfield/sms", body))
    forged = post_md5(envoy, "/linksfield/sms", body, sig=sig_json(body, "wrong-secret"))
    assert forged.status == 401 and forged.json()["error"] == "invalid_signature"
    unsigned = post_md5(envoy, "/linksfield/sms", body, sig=None)
    assert unsigned.status == 401
    assert len(backend.wait_requests(1)) == 1


@pytest.mark.parametrize("status", [500, 503, 404])
def test_failed_backend_answer_is_not_recorded(envoy, backend, status):
    body = notification(10 + status)
    backend.fail_next(status)
    first = post_md5(envoy, "/linksfield/sms", body)
    assert first.status == status
    second = post_md5(envoy, "/linksfield/sms", body)  # the provider's retry
    assert second.status == 200 and not is_duplicate_reply(second)
    assert len(backend.wait_requests(2)) == 2, "the retry after a failure must reach the backend"
    third = post_md5(envoy, "/linksfield/sms", body)
    assert is_duplicate_reply(third)
    time.sleep(0.2)
    assert len(backend.requests()) == 2


def test_cube_deliveries_are_deduplicated(envoy, backend):
    body = notification(4)
    headers = cube_headers(body)
    first = send_request(envoy.listen_port, "POST", "/cube/n", headers, body)
    assert first.status == 200 and not is_duplicate_reply(first)
    again = send_request(envoy.listen_port, "POST", "/cube/n", headers, body)
    assert is_duplicate_reply(again)
    # same body, later send time (a new signature): a new delivery
    later = send_request(envoy.listen_port, "POST", "/cube/n",
                         cube_headers(body, timestamp="1683524066001"), body)
    assert not is_duplicate_reply(later)
    assert len(backend.wait_requests(2)) == 2


def test_entries_expire_after_the_window(envoy, backend):
    body = notification(5)
    assert not is_duplicate_reply(post_md5(envoy, "/short/x", body))
    assert is_duplicate_reply(post_md5(envoy, "/short/x", body))
    time.sleep(1.3)
    assert not is_duplicate_reply(post_md5(envoy, "/short/x", body))
    assert len(backend.wait_requests(2)) == 2


def test_dedup_off_per_route_and_in_shadow_mode(envoy, backend):
    for path in ("/off/x", "/shadow/x"):
        body = notification(6)
        for _ in range(2):
            assert not is_duplicate_reply(post_md5(envoy, path, body))
    assert len(backend.wait_requests(4)) == 4


def test_memory_bound_with_many_distinct_deliveries(envoy, backend):
    before = lf_stats(envoy)
    n = 200
    bodies = [notification(1000 + i) for i in range(n)]
    for body in bodies:
        resp = post_md5(envoy, "/small/x", body)
        assert resp.status == 200 and not is_duplicate_reply(resp)
    assert len(backend.wait_requests(n)) == n
    after = lf_stats(envoy)
    assert after["dedup_recorded"] - before["dedup_recorded"] == n
    # 200 deliveries into 16 slots: at least 184 overwrote a live entry
    assert after["dedup_evictions"] - before["dedup_evictions"] >= n - 16
    # Replay everything, newest first (a forwarded replay is recorded again and would evict the
    # newer entries of its slot): only the newest delivery of each slot (<= 16) is still known.
    backend.reset()
    answered = [is_duplicate_reply(post_md5(envoy, "/small/x", b)) for b in reversed(bodies)]
    answered.reverse()
    assert 1 <= sum(answered) <= 16, sum(answered)
    assert answered[-1], "the newest delivery is still recorded"
    assert not any(answered[:20]), "the oldest deliveries were evicted and forwarded again"
    assert len(backend.wait_requests(n - sum(answered))) == n - sum(answered)
    # Envoy is healthy
    assert envoy.running
    assert envoy.admin_get("/ready")[1].strip() == "LIVE"
    assert post_md5(envoy, "/linksfield/sms", notification(7)).status == 200
