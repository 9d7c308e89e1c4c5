"""Continuous mixed traffic in the background, for the production tests: key rotation
and shadow -> enforce under load (test_rotation.py), hot restart (test_hot_restart.py) and the
genuine side of the flood (test_limits.py).

`Load(port, builder, ...)` runs an asyncio loop in a thread: `workers` clients send soak.Builder
requests (genuine md5 JSON / form / Cube and every forged kind of soak.KINDS, each with a unique
marker in its body and in `x-soak-seq`) until `stop()`, which returns every exchange. Per request
a client is fast (one write) or slow (headers, a pause, half the body, a pause, the rest: so at any
moment some requests are held mid-body in the filter), and keeps its connection alive or opens a
new one. `source` is the client address (the flood binds 127.0.0.2). `retry_transport=True` makes
a client retry a request whose exchange failed at the connection level before any response byte
(what the provider does); every attempt is recorded. The builder's `secret` may be changed while
the load runs (the sender switching keys): each exchange records the secret it was signed with.

`account(exchanges, backend, builder)` matches what the backend received against what was sent
(by marker): which genuine ones arrived and how often, their `x-lf-verified`, and whether any
forged byte arrived.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_E2E = Path(__file__).resolve().parent.parent
for _d in (_E2E / "lib", _E2E / "soak"):  # helpers and the soak driver
    if str(_d) not in sys.path:
        sys.path.insert(0, str(_d))

import harness  # noqa: E402
import soak_driver as soak  # noqa: E402


@dataclass
class Exchange:
    seq: int
    kind: str
    marker: str
    secret: str  # the md5 secret the builder signed genuine md5 requests with
    slow: bool
    digest: str  # SHA-256 of the body as sent
    t_start: float = 0.0
    t_end: float = 0.0
    status: int = 0  # of the last attempt (0: no response)
    error: str | None = None  # `error` of a local reply
    transport: str | None = None  # the last attempt's connection-level failure
    attempts: list[str] = field(default_factory=list)  # one entry per attempt: status or failure

    @property
    def genuine(self) -> bool:
        return soak.KINDS[self.kind][0]

    @property
    def expected(self) -> tuple[int, str | None]:
        return soak.KINDS[self.kind][2], soak.KINDS[self.kind][3]


class Load:
    def __init__(
        self,
        port: int,
        builder: soak.Builder,
        *,
        workers: int = 16,
        slow_ratio: float = 0.3,
        new_conn_ratio: float = 0.3,
        source: str = "127.0.0.1",
        timeout: float = 20.0,
        retry_transport: bool = False,
        max_attempts: int = 4,
        pace: float = 0.0,
        seed: int = 17,
    ):
        self.port = port
        self.builder = builder
        self.workers = workers
        self.slow_ratio = slow_ratio
        self.new_conn_ratio = new_conn_ratio
        self.source = source
        self.timeout = timeout
        self.retry_transport = retry_transport
        self.max_attempts = max_attempts
        self.pace = pace
        self.rng = random.Random(seed)
        self.exchanges: list[Exchange] = []
        self._seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.in_flight = 0  # requests sent (at least partly) and not answered
        self.mid_body = 0  # slow requests whose headers are sent and whose body is not complete

    # -- control ----------------------------------------------------------------------------

    def start(self) -> "Load":
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> list[Exchange]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("load did not stop")
        return list(self.exchanges)

    def snapshot(self) -> list[Exchange]:
        with self._lock:
            return list(self.exchanges)

    def wait_mid_body(self, n: int = 1, timeout: float = 10.0) -> int:
        """Wait until at least n slow requests are held mid-body; returns how many are."""
        deadline = time.monotonic() + timeout
        while self.mid_body < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.mid_body

    # -- the clients ------------------------------------------------------------------------

    async def _main(self) -> None:
        await asyncio.gather(*(self._worker(i) for i in range(self.workers)))

    async def _connect(self):
        return await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.port, local_addr=(self.source, 0)), 5.0)

    async def _send(self, writer, wire: bytes, slow: bool) -> None:
        if not slow:
            writer.write(wire)
            await writer.drain()
            return
        head_end = wire.index(b"\r\n\r\n") + 4
        half = head_end + (len(wire) - head_end) // 2
        self.mid_body += 1
        try:
            writer.write(wire[:head_end])
            await writer.drain()
            await asyncio.sleep(self.rng.uniform(0.05, 0.4))
            writer.write(wire[head_end:half])
            await writer.drain()
            await asyncio.sleep(self.rng.uniform(0.05, 0.4))
        finally:
            self.mid_body -= 1
        writer.write(wire[half:])
        await writer.drain()

    async def _worker(self, wid: int) -> None:
        reader = writer = None
        try:
            while not self._stop.is_set():
                seq = self._seq
                self._seq += 1
                secret = self.builder.secret
                kind, body, wire = self.builder.build(seq)
                # Over-limit bodies go in one write: Envoy answers 413 from the headers and
                # closes, and a client still writing the body then gets a reset that can
                # discard the 413 already received (TCP), which would say nothing about the filter.
                slow = kind not in soak.RECONNECT_KINDS and self.rng.random() < self.slow_ratio
                ex = Exchange(seq, kind, self.builder.marker(seq), secret, slow,
                              hashlib.sha256(body).hexdigest(), time.monotonic())
                with self._lock:
                    self.exchanges.append(ex)
                close = kind in soak.RECONNECT_KINDS or self.rng.random() < self.new_conn_ratio
                while True:
                    got_bytes = False
                    self.in_flight += 1
                    try:
                        if writer is None:
                            reader, writer = await self._connect()
                        await self._send(writer, wire, ex.slow)
                        status, headers, resp_body = await asyncio.wait_for(
                            soak.read_response(reader), self.timeout)
                    except asyncio.IncompleteReadError as e:
                        got_bytes = bool(e.partial)
                        ex.transport = f"IncompleteReadError: {len(e.partial)} bytes"
                    except (OSError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                            ValueError) as e:
                        ex.transport = f"{type(e).__name__}: {e}"[:200]
                        got_bytes = isinstance(e, (asyncio.TimeoutError, ValueError))
                    else:
                        ex.transport = None
                        ex.status = status
                        ex.error = soak.reply_error(status, resp_body)
                        if headers.get("connection", "").lower() == "close":
                            close = True
                    finally:
                        self.in_flight -= 1
                    ex.attempts.append(ex.transport or str(ex.status))
                    if ex.transport is not None:
                        close = True
                        if writer is not None:
                            writer.close()
                            reader = writer = None
                        if (self.retry_transport and not got_bytes
                                and len(ex.attempts) < self.max_attempts
                                and not self._stop.is_set()):
                            await asyncio.sleep(0.05 * len(ex.attempts))
                            continue
                    break
                ex.t_end = time.monotonic()
                if close and writer is not None:
                    await soak.close_writer(writer)
                    reader = writer = None
                if self.pace:
                    await asyncio.sleep(self.pace)
        finally:
            if writer is not None:
                writer.close()


# ------------------------------------------------------------------------------------------------
# What reached the backend
# ------------------------------------------------------------------------------------------------


@dataclass
class Account:
    delivered: Counter  # marker -> number of backend requests carrying it (genuine only)
    verified: dict  # marker -> x-lf-verified values at the backend
    forged_on_backend: list  # markers of forged requests found anywhere in the backend's bytes
    unknown_on_backend: list
    digests_ok: bool  # every delivered request of this run is a genuine one, byte for byte


def account(exchanges: list[Exchange], backend: harness.RecordingBackend,
            builder: soak.Builder) -> Account:
    by_marker = {e.marker: e for e in exchanges}
    marker_re = re.compile(rb"SOAK" + builder.run_id.encode() + rb"-\d{8}")
    seen: set[str] = set()
    for raw in backend.connections():
        seen.update(m.decode() for m in marker_re.findall(raw))
    delivered: Counter = Counter()
    verified: dict[str, list[str]] = {}
    digests_ok = True
    mine = f"SOAK{builder.run_id}-"
    for r in backend.requests():
        m = r.header("x-soak-seq") or ""
        if not m.startswith(mine):
            continue  # another load's request (or a probe): judged by its own account
        delivered[m] += 1
        verified[m] = r.header_all("x-lf-verified")
        ex = by_marker.get(m)
        if ex is None or not ex.genuine or hashlib.sha256(r.body).hexdigest() != ex.digest:
            digests_ok = False
    return Account(
        delivered=delivered,
        verified=verified,
        forged_on_backend=sorted(m for m in seen if m in by_marker and not by_marker[m].genuine),
        unknown_on_backend=sorted(m for m in seen if m not in by_marker),
        digests_ok=digests_ok,
    )


def expected_verified(ex: Exchange, keys: dict[str, str]) -> str:
    """The x-lf-verified the backend should see for a genuine exchange (hold mode names the key);
    keys maps an md5 secret to its key id."""
    if ex.kind == "cube":
        return f"cube; key={soak.CUBE_KEY_ID}"
    return f"md5; key={keys[ex.secret]}"


def summary(exchanges: list[Exchange]) -> dict:
    genuine = [e for e in exchanges if e.genuine]
    return {
        "requests": len(exchanges),
        "genuine": len(genuine),
        "forged": len(exchanges) - len(genuine),
        "slow": sum(e.slow for e in exchanges),
        "statuses": dict(sorted(Counter(e.status for e in exchanges if not e.transport).items())),
        "transport_failures": sum(1 for e in exchanges if e.transport),
        "transport_kinds": dict(Counter(e.transport.split(":")[0] for e in exchanges
                                        if e.transport)),
        "retried": sum(1 for e in exchanges if len(e.attempts) > 1),
    }
