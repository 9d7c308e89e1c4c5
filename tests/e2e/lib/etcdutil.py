"""A real three-member etcd cluster for the fleet de-duplication tests, and a small client of
etcd's JSON gateway.

`EtcdCluster` drives the shipped envoy/etcd-cluster.sh on free loopback ports in its own temp
directory (start, stop, kill one member, restore it), so the tests exercise the script an operator
runs. Missing etcd FAILS the test with the install hint (`make etcd`), never skips.

The identity/key helpers are an independent Python oracle of src/dedup.rs (Identity::new) and
src/dedup/etcd.rs (key layout), so a test can look up in etcd what the filter recorded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import harness

SCRIPT = harness.REPO / "envoy" / "etcd-cluster.sh"
ETCD_MISSING = (
    "etcd not found: run `make etcd` (installs Debian etcd-server 3.4 with apt-get; root) "
    "or set ETCD_BIN"
)
DEFAULT_PREFIX = "lf-webhook-guard/dedup/v2/"


class EtcdError(Exception):
    pass


def find_etcd() -> str:
    explicit = os.environ.get("ETCD_BIN")
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise harness.HarnessError(f"{ETCD_MISSING} (ETCD_BIN={explicit!r} is not executable)")
    found = shutil.which("etcd")
    if not found:
        raise harness.HarnessError(ETCD_MISSING)
    if not shutil.which("curl"):
        raise harness.HarnessError("curl not found (envoy/etcd-cluster.sh needs it): apt-get install curl")
    return found


def _distinct_free_ports(n: int) -> list[int]:
    """n distinct free ports, all held open until chosen (so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def identity(route: str, target: bytes, scheme: str, signature: bytes, body: bytes) -> bytes:
    """Independent oracle of src/dedup.rs Identity::new (v2): SHA-1 over length-prefixed parts."""
    h = hashlib.sha1(b"lf-webhook-guard dedup v2\0")
    for part in (route.encode(), target, scheme.encode(), signature, hashlib.sha1(body).digest()):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


def store_key(ident: bytes, prefix: str = DEFAULT_PREFIX) -> str:
    """The etcd key of a delivery (src/dedup/etcd.rs key())."""
    return prefix + ident.hex()


class EtcdCluster:
    """Three etcd members on free loopback ports, managed through envoy/etcd-cluster.sh."""

    def __init__(self) -> None:
        self.etcd_bin = find_etcd()
        self.dir = Path(tempfile.mkdtemp(prefix="lf-etcd-"))
        ports = _distinct_free_ports(6)
        self.client_ports = ports[:3]
        self.peer_ports = ports[3:]
        self.env = dict(
            os.environ,
            ETCD_DIR=str(self.dir / "cluster"),
            ETCD_CLIENT_PORTS=" ".join(map(str, self.client_ports)),
            ETCD_PEER_PORTS=" ".join(map(str, self.peer_ports)),
            ETCD_BIN=self.etcd_bin,
        )
        self.started = False

    # -- lifecycle ---------------------------------------------------------------------------

    def _script(self, *args: str, timeout: float = 40.0) -> str:
        proc = subprocess.run(
            ["bash", str(SCRIPT), *args],
            env=self.env, capture_output=True, text=True, timeout=timeout,
        )
        if proc.returncode != 0:
            raise harness.HarnessError(
                f"etcd-cluster.sh {' '.join(args)} failed ({proc.returncode}): "
                f"{proc.stderr.strip()[-2000:]}"
            )
        return proc.stdout

    def start(self) -> "EtcdCluster":
        self._script("start")
        self.started = True
        return self

    def close(self) -> None:
        if self.started:
            try:
                self._script("stop")
            finally:
                self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "EtcdCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def kill(self, member: int) -> None:
        """SIGKILL member 1..3 (by its recorded pid); its data stays for restore()."""
        self._script("kill", str(member))

    def restore(self, member: int) -> None:
        """Start a killed member again on its data and wait until it is healthy."""
        self._script("restore", str(member))

    def restore_all(self) -> None:
        """Bring every member back (those running are left alone) and wait for a leader."""
        for m in (1, 2, 3):
            if not self.member_alive(m):
                self.restore(m)
        self.wait_healthy()

    def pid(self, member: int) -> int | None:
        try:
            return int((Path(self.env["ETCD_DIR"]) / f"m{member}.pid").read_text())
        except (OSError, ValueError):
            return None

    def member_alive(self, member: int) -> bool:
        pid = self.pid(member)
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if all(self.healthy(m) for m in (1, 2, 3)):
                return
            if time.monotonic() > deadline:
                down = [m for m in (1, 2, 3) if not self.healthy(m)]
                raise harness.HarnessError(f"etcd members {down} not healthy after {timeout} s")
            time.sleep(0.2)

    def leader(self) -> int:
        """The member (1..3) that is the Raft leader now; EtcdError if none answers as one."""
        for m in (1, 2, 3):
            if not self.member_alive(m):
                continue
            try:
                status, doc = self.call("/v3/maintenance/status", {}, member=m, timeout=1.0)
            except OSError:
                continue
            if status == 200 and doc.get("leader") == doc.get("header", {}).get("member_id"):
                return m
        raise EtcdError("no leader")

    def wait_leader(self, timeout: float = 10.0) -> int:
        """Wait until the live members have elected a leader (after the leader was killed)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.leader()
            except EtcdError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    # -- addresses ---------------------------------------------------------------------------

    def url(self, member: int) -> str:
        return f"http://127.0.0.1:{self.client_ports[member - 1]}"

    @property
    def urls(self) -> list[str]:
        return [self.url(m) for m in (1, 2, 3)]

    def healthy(self, member: int) -> bool:
        try:
            with urllib.request.urlopen(self.url(member) + "/health", timeout=1) as r:
                return json.loads(r.read()).get("health") == "true"
        except (OSError, ValueError):
            return False

    # -- JSON gateway ------------------------------------------------------------------------

    def call(self, path: str, body: dict | str, *, member: int = 1, timeout: float = 3.0):
        """POST to the JSON gateway; returns (HTTP status, parsed JSON answer)."""
        data = body if isinstance(body, str) else json.dumps(body)
        req = urllib.request.Request(
            self.url(member) + path, data=data.encode(), method="POST",
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def get(self, key: str, *, member: int = 1) -> dict | None:
        """The kv of `key` (value decoded to str), or None."""
        status, doc = self.call("/v3/kv/range", {"key": b64(key)}, member=member)
        if status != 200:
            raise EtcdError(f"range: HTTP {status}: {doc}")
        kvs = doc.get("kvs", [])
        if not kvs:
            return None
        kv = dict(kvs[0])
        kv["value"] = unb64(kv.get("value", "")).decode()
        return kv

    def keys(self, prefix: str = DEFAULT_PREFIX, *, member: int = 1) -> list[str]:
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        status, doc = self.call(
            "/v3/kv/range", {"key": b64(prefix), "range_end": b64(end), "keys_only": True},
            member=member,
        )
        if status != 200:
            raise EtcdError(f"range: HTTP {status}: {doc}")
        return [unb64(kv["key"]).decode() for kv in doc.get("kvs", [])]

    def delete_prefix(self, prefix: str = DEFAULT_PREFIX) -> None:
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        status, doc = self.call("/v3/kv/deleterange", {"key": b64(prefix), "range_end": b64(end)})
        if status != 200:
            raise EtcdError(f"deleterange: HTTP {status}: {doc}")


def cluster_or_fail() -> EtcdCluster:
    """A started cluster; a missing etcd or a failed start fails the test with the reason."""
    try:
        c = EtcdCluster()
    except harness.HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        return c.start()
    except harness.HarnessError as e:
        c.close()
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module")
def etcd():
    """A three-member cluster for the test module (import this fixture and `cluster`)."""
    c = cluster_or_fail()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def cluster(etcd):
    """The module's cluster with every member up and no de-dup keys left by an earlier test;
    members killed by the test are brought back afterwards."""
    etcd.restore_all()
    etcd.delete_prefix()
    yield etcd
    etcd.restore_all()
