"""The etcd contract of the fleet de-duplication store (issue 16), against a real three-member
cluster started with the shipped envoy/etcd-cluster.sh; no Envoy, no filter.

The calls are the golden ones of tests/data/fleet-etcd-calls.json, which src/dedup/etcd.rs checks
its builders and parsers against: here they go to real etcd, and each answer must have the shape
of the measured one the parsers were tested with (same fields, same types), and mean the same.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

import etcdutil
import harness
from etcdutil import b64, cluster, etcd, unb64  # noqa: F401 (cluster, etcd: fixtures)

GOLDEN = json.loads((harness.REPO / "tests" / "data" / "fleet-etcd-calls.json").read_text())
RANGE, TXN, GRANT = "/v3/kv/range", "/v3/kv/txn", "/v3/lease/grant"


def shape(v):
    """Field names and value types, recursively (values themselves differ run to run)."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in sorted(v.items())}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    return type(v).__name__


def assert_like(measured: str, status: int, doc: dict) -> None:
    want = GOLDEN["answers"][measured]
    assert status == want["status"], (measured, status, doc)
    assert shape(doc) == shape(want["body"]), (measured, doc, want["body"])


def insert_call(lease: str, expires_ms: int, key: str | None = None) -> dict:
    text = json.dumps(GOLDEN["calls"]["insert"])
    text = text.replace('"1234"', json.dumps(lease))
    text = text.replace(b64(str(GOLDEN["insert_expires_ms"])), b64(str(expires_ms)))
    if key is not None:
        text = text.replace(b64(GOLDEN["key"]), b64(key))
    return json.loads(text)


def grant(cluster, ttl: int = 66, member: int = 1) -> str:
    status, doc = cluster.call(GRANT, {"TTL": str(ttl)}, member=member)
    assert_like("grant", status, doc)
    assert doc["TTL"] == str(ttl)
    return doc["ID"]


def test_python_oracle_and_golden_key_agree():
    """etcdutil's identity/key oracle (used by the filter tests to find records) matches the key
    the Rust core derives (src/dedup/etcd.rs checks its own key against the same file)."""
    d = GOLDEN["delivery"]
    ident = etcdutil.identity(
        d["route"], d["target"].encode(), d["scheme"], d["signature"].encode(), d["body"].encode()
    )
    assert etcdutil.store_key(ident) == GOLDEN["key"]
    assert unb64(GOLDEN["calls"]["range"]["key"]).decode() == GOLDEN["key"]


def test_golden_calls_against_real_etcd(cluster):
    """range (absent) -> grant -> insert-if-absent (created) -> again (compare fails: no
    `succeeded` field at all) -> range (found, value = expiry) -> unknown lease: 404, code 5."""
    status, doc = cluster.call(RANGE, GOLDEN["calls"]["range"])
    assert_like("range_absent", status, doc)
    assert "kvs" not in doc and "count" not in doc

    lease = grant(cluster)
    expires = int(time.time() * 1000) + GOLDEN["window_ms"]
    status, doc = cluster.call(TXN, insert_call(lease, expires))
    assert_like("txn_created", status, doc)
    assert doc["succeeded"] is True

    # the second copy, through another member: the compare fails, `succeeded` is omitted
    status, doc = cluster.call(TXN, insert_call(lease, expires + 5), member=2)
    assert_like("txn_exists", status, doc)
    assert "succeeded" not in doc

    status, doc = cluster.call(RANGE, GOLDEN["calls"]["range"], member=3)
    assert_like("range_found", status, doc)
    (kv,) = doc["kvs"]
    assert unb64(kv["key"]).decode() == GOLDEN["key"]
    assert unb64(kv["value"]).decode() == str(expires), "the first record stays"
    assert kv["lease"] == lease

    status, doc = cluster.call(TXN, insert_call("1234", expires, key=GOLDEN["key"] + "x"))
    assert_like("lease_not_found", status, doc)
    assert "lease not found" in doc["message"]


def test_keys_vanish_with_their_lease_and_one_lease_serves_a_bucket(cluster):
    """Lease reuse: several records share one bucket lease; all vanish when it expires."""
    lease = grant(cluster, ttl=2)
    keys = [f"{etcdutil.DEFAULT_PREFIX}{i:040x}" for i in range(5)]
    for k in keys:
        status, doc = cluster.call(TXN, insert_call(lease, 1, key=k))
        assert (status, doc.get("succeeded")) == (200, True), doc
    assert sorted(cluster.keys()) == keys
    status, doc = cluster.call("/v3/lease/timetolive", {"ID": lease, "keys": True})
    assert status == 200 and len(doc.get("keys", [])) == 5, doc
    deadline = time.monotonic() + 6
    while cluster.keys() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert cluster.keys() == [], "keys outlived their lease"


def test_two_copies_in_flight_exactly_one_insert_wins(cluster):
    """Insert-if-absent is atomic across members: of 6 concurrent inserts of one key (two per
    member), exactly one succeeds."""
    lease = grant(cluster)
    results: list[bool] = []
    lock = threading.Lock()

    def insert(member: int, n: int) -> None:
        status, doc = cluster.call(TXN, insert_call(lease, 1000 + n), member=member)
        assert status == 200, doc
        with lock:
            results.append(doc.get("succeeded", False))

    threads = [threading.Thread(target=insert, args=(m, i)) for i, m in enumerate([1, 2, 3] * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [False] * 5 + [True], results


def timed(cluster, path, body, member, timeout):
    t0 = time.monotonic()
    try:
        result = cluster.call(path, body, member=member, timeout=timeout)
    except OSError as e:  # socket timeout
        result = e
    return result, time.monotonic() - t0


def test_member_failures_quorum_and_restore(cluster):
    """One member (the leader) killed: the others answer range and txn within a second (after
    a new election). Two killed: the survivor answers neither within the timeout (no quorum:
    the caller's timeout is the only bound). Restored: back to normal, the records kept."""
    lease = grant(cluster)
    k1 = f"{etcdutil.DEFAULT_PREFIX}{'1' * 40}"
    status, doc = cluster.call(TXN, insert_call(lease, 111, key=k1))
    assert doc.get("succeeded") is True

    dead = cluster.leader()
    cluster.kill(dead)
    alive = [m for m in (1, 2, 3) if m != dead]
    # a new leader within ~election timeout (500 ms here)
    deadline = time.monotonic() + 5
    while True:
        (status, doc), took = timed(cluster, RANGE, {"key": b64(k1)}, alive[0], 2.0)
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 200 and doc["kvs"], doc
    for m in alive:
        (status, doc), took = timed(cluster, RANGE, {"key": b64(k1)}, m, 2.0)
        assert status == 200 and unb64(doc["kvs"][0]["value"]) == b"111", doc
        assert took < 1.0, took
        k = f"{etcdutil.DEFAULT_PREFIX}{m:040x}"
        (status, doc), took = timed(cluster, TXN, insert_call(lease, 222, key=k), m, 2.0)
        assert doc.get("succeeded") is True and took < 1.0, (doc, took)

    cluster.kill(alive[0])
    survivor = alive[1]
    for path, body in ((RANGE, {"key": b64(k1)}), (TXN, insert_call(lease, 3, key=k1 + "z"))):
        result, took = timed(cluster, path, body, survivor, 1.0)
        assert isinstance(result, OSError), f"answered without quorum: {result}"
        assert 0.9 <= took < 2.0, took

    cluster.restore_all()
    (status, doc), took = timed(cluster, RANGE, {"key": b64(k1)}, dead, 3.0)
    assert status == 200 and unb64(doc["kvs"][0]["value"]) == b"111", doc
    # (the insert sent without quorum may or may not be applied later: a record that lands
    # late is still a record of an acknowledged delivery, so the store does not care)
    assert {k1, *(f"{etcdutil.DEFAULT_PREFIX}{m:040x}" for m in alive)} <= set(cluster.keys())


def test_missing_etcd_fails_with_install_hint(monkeypatch):
    monkeypatch.setenv("ETCD_BIN", "/nonexistent/etcd")
    with pytest.raises(harness.HarnessError, match="make etcd"):
        etcdutil.EtcdCluster()
