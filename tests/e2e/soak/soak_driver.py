"""Soak driver: mixed genuine and forged webhook traffic at high concurrency
through a real Envoy running the built filter, then an exact account of what reached the backend.

Importable (`run_soak(SoakConfig(...))` returns the report dict; `report["failures"]` lists every
violated expectation) and runnable as a script:

    .venv/bin/python tests/e2e/soak/soak_driver.py --requests 200000 --concurrency 64 --duration 600 \
        --json-out bench/results/soak.json

What it does, all on 127.0.0.1:
- starts harness.RecordingBackend (records every byte per connection, parses the requests) and
  Envoy from a shipped YAML (default: $LF_E2E_ENVOY_YAML or envoy/envoy.yaml) with
  `--concurrency 2` by default, so both workers (each with its own Wasm VM) take traffic;
- drives `concurrency` keep-alive HTTP/1.1 connections (asyncio, raw sockets) with a seeded mix of
  genuine md5 JSON, genuine md5 form, genuine Cube, and forged variants (wrong signature, one
  tampered body byte, missing signature, malformed body, over-limit body by Content-Length and
  by chunked body, Cube signed with the wrong key). Every request carries a unique marker
  `SOAK<run>-<seq>` in its body and in an `x-soak-seq` header, so every body is unique (the
  edge de-duplication feature is off in the shipped configs, and unique bodies could never be
  duplicates anyway) and any forged byte on the backend can be found;
- the first `warmup` requests are the warm-up phase (RSS and memory_allocated are read before
  and after it, and at the end; RSS is also sampled every 0.5 s);
- afterwards checks: the backend's requests are exactly the genuine ones (count, and the multiset
  of SHA-256 body digests), no forged marker anywhere in the backend's raw bytes (headers or
  body), every genuine answered 200 by the backend, every forged answered its documented status
  and `error` category, zero 5xx, zero transport errors, no Wasm VM created/reloaded/failed
  during the run (`wasm.envoy.wasm.runtime.v8.{created,active}`, `wasm.wasm_vm_count`,
  `wasm.lf_webhook_guard.vm_reload*`), no panic / critical line in Envoy's log, the filter's own
  counters (`wasmcustom.lf_webhook_guard.*`) equal to the sent mix, and bounded memory growth.

Clients never retry: a request whose connection fails is reported as a transport error (a retry
of a genuine request could hide a lost one or create a duplicate upstream).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

import harness  # noqa: E402
import lfsign  # noqa: E402
from opsutil import lf_counters  # noqa: E402

SECRET = harness.DEFAULT_SECRET
CUBE_KEY_ID = harness.DEFAULT_CUBE_KEY_ID
CUBE_KEY = harness.DEFAULT_CUBE_KEY
WRONG_SECRET = "not-the-secret-0123"
WRONG_CUBE_KEY = "X" * 64
MAX_BODY = 65536  # the shipped plugin JSON's max_body_bytes
MIB = 1024 * 1024

# Memory bound after warm-up. Envoy's working set under this load is bounded by the number of
# requests in flight (at most `concurrency`, each body <= 64 KiB in the filter, so a few MiB) plus
# allocator caches and stats that reach a steady state during warm-up. A per-request leak is what
# this catches: 200,000 requests x 256 bytes is already ~49 MiB. 50 MiB leaves room for the noise
# of allocator caches and V8 heap growth on a shared machine without hiding a real leak in the
# long soak (the short test is a smoke check: too few requests for a small leak to reach it).
RSS_GROWTH_LIMIT = 50 * MIB

PANIC_RE = re.compile(r"panicked|\[critical\]|wasm.*(?:failed|crash)|VM .*fail|fail.*VM", re.I)


# kind -> (genuine, route, expected status, expected error category or None, weight)
KINDS: dict[str, tuple[bool, str, int, str | None, float]] = {
    "md5_json": (True, "/linksfield/notify", 200, None, 1.0),
    "md5_form": (True, "/linksfield/notify", 200, None, 1.0),
    "cube": (True, "/cube/notify", 200, None, 1.0),
    "forged_wrong_signature": (False, "/linksfield/notify", 401, "invalid_signature", 1.0),
    "forged_tampered_json": (False, "/linksfield/notify", 401, "invalid_signature", 1.0),
    "forged_tampered_form": (False, "/linksfield/notify", 401, "invalid_signature", 1.0),
    "forged_missing_signature": (False, "/linksfield/notify", 401, "missing_signature", 1.0),
    "forged_cube_wrong_key": (False, "/cube/notify", 401, "invalid_signature", 1.0),
    "forged_cube_missing_signature": (False, "/cube/notify", 401, "missing_signature", 0.5),
    "forged_malformed_json": (False, "/linksfield/notify", 400, "malformed_body", 1.0),
    "forged_over_limit_content_length": (False, "/linksfield/notify", 413, "body_too_large", 0.5),
    "forged_over_limit_chunked": (False, "/linksfield/notify", 413, "body_too_large", 0.5),
}
GENUINE_KINDS = [k for k, v in KINDS.items() if v[0]]
FORGED_KINDS = [k for k, v in KINDS.items() if not v[0]]
# Envoy may answer these before it has read the whole body and then close the connection; a
# client that sent a body Envoy did not read opens a new connection afterwards.
RECONNECT_KINDS = {"forged_over_limit_content_length", "forged_over_limit_chunked"}


@dataclass
class SoakConfig:
    requests: int = 4000
    concurrency: int = 32
    forged_ratio: float = 0.4
    envoy_concurrency: int = 2
    duration: float = 60.0  # cap in seconds on the traffic phase (warm-up included)
    warmup: int | None = None  # default: 10% of requests, at least 200, at most 20,000
    yaml: str | None = None  # default: $LF_E2E_ENVOY_YAML or envoy/envoy.yaml
    seed: int = 8
    request_timeout: float = 20.0  # per request; the route timeout is 15 s
    envoy_bin: str | None = None
    wasm_path: str | None = None
    log_level: str = "info"  # Envoy's level; the harness adds `--component-log-level wasm:debug`
    without_filter: bool = False  # self-check only: Envoy without the filter must fail the soak


@dataclass
class Sent:
    seq: int
    kind: str
    digest: str  # SHA-256 of the body as sent
    status: int = 0
    error: str | None = None  # the `error` field of a local reply
    transport: str | None = None  # set if the exchange failed


# --------------------------------------------------------------------------------------------
# Request construction
# --------------------------------------------------------------------------------------------


class Builder:
    def __init__(self, run_id: str, seed: int, forged_ratio: float, secret: str = SECRET):
        self.run_id = run_id
        # The md5 secret genuine requests are signed with (tests/e2e/production/load.py switches it for a
        # key rotation).
        self.secret = secret
        self.rng = random.Random(seed)
        self.forged_ratio = forged_ratio
        self.genuine_w = [KINDS[k][4] for k in GENUINE_KINDS]
        self.forged_w = [KINDS[k][4] for k in FORGED_KINDS]

    def marker(self, seq: int) -> str:
        return f"SOAK{self.run_id}-{seq:08d}"

    def pick(self) -> str:
        if self.rng.random() < self.forged_ratio:
            return self.rng.choices(FORGED_KINDS, self.forged_w)[0]
        return self.rng.choices(GENUINE_KINDS, self.genuine_w)[0]

    def notification(self, seq: int, marker: str) -> bytes:
        pad = "p" * (seq % 257)  # varied sizes
        return json.dumps(
            {
                "partner_code": "P123456",
                "sim_id": f"8986022019{seq:010d}",
                "imsi": "4230001234567",
                "message_type": "Text",
                "text_message": f"device status: 1234 {marker}",
                "received_at": "1642385160000",
                "pad": pad,
            },
            separators=(",", ":"),
        ).encode()

    def form(self, seq: int, marker: str) -> bytes:
        return (
            f"partner_code=P123456&sim_id=8986022019{seq:010d}&imsi=4230001234567"
            f"&message_type=Text&text_message=device+status%3A+1234+{marker}"
            f"&received_at=1642385160000&pad={'q' * (seq % 257)}"
        ).encode()

    def build(self, seq: int) -> tuple[str, bytes, bytes]:
        """(kind, body, wire bytes of the whole request)."""
        kind = self.pick()
        marker = self.marker(seq)
        path = KINDS[kind][1]
        headers: list[tuple[str, str]] = [("x-soak-seq", marker)]
        chunked = False
        if kind in ("md5_json", "forged_wrong_signature", "forged_tampered_json",
                    "forged_missing_signature"):
            body = self.notification(seq, marker)
            headers.append(("content-type", "application/json"))
            if kind == "md5_json":
                headers.append(("x-lf-md5", lfsign.sign_body(body, self.secret, "json")))
            elif kind == "forged_wrong_signature":
                headers.append(("x-lf-md5", lfsign.sign_body(body, WRONG_SECRET, "json")))
            elif kind == "forged_tampered_json":
                headers.append(("x-lf-md5", lfsign.sign_body(body, self.secret, "json")))
                body = body.replace(b"status: 1234", b"status: 1235", 1)
        elif kind in ("md5_form", "forged_tampered_form"):
            body = self.form(seq, marker)
            headers.append(("content-type", "application/x-www-form-urlencoded"))
            headers.append(("x-lf-md5", lfsign.sign_body(body, self.secret, "form")))
            if kind == "forged_tampered_form":
                body = body.replace(b"status%3A+1234", b"status%3A+1235", 1)
        elif kind in ("cube", "forged_cube_wrong_key", "forged_cube_missing_signature"):
            body = self.notification(seq, marker)
            ts = str(int(time.time() * 1000))
            key = CUBE_KEY if kind == "cube" else WRONG_CUBE_KEY
            headers += [
                ("content-type", "application/json"),
                ("x-lf-notification-version", "1.0"),
                ("x-lf-algo", "HMAC-SHA1"),
                ("x-lf-timestamp", ts),
            ]
            if kind != "forged_cube_missing_signature":
                headers.append(("x-lf-signature", lfsign.sign_cube(body, CUBE_KEY_ID, key, ts)))
        elif kind == "forged_malformed_json":
            good = self.notification(seq, marker)
            headers.append(("content-type", "application/json"))
            headers.append(("x-lf-md5", lfsign.sign_body(good, SECRET, "json")))
            body = good[:-1] + b","  # the closing brace replaced: not JSON any more
        elif kind in ("forged_over_limit_content_length", "forged_over_limit_chunked"):
            head = f'{{"text_message":"{marker}","pad":"'.encode()
            n = MAX_BODY + 1 + seq % 1000 - len(head) - 2
            body = head + b"x" * n + b'"}'
            assert len(body) > MAX_BODY
            headers.append(("content-type", "application/json"))
            headers.append(("x-lf-md5", lfsign.sign_body(b'{"a":"b"}', SECRET, "json")))
            chunked = kind == "forged_over_limit_chunked"
        else:  # pragma: no cover
            raise AssertionError(kind)

        head = f"POST {path} HTTP/1.1\r\nhost: lf-soak.test\r\n"
        for k, v in headers:
            head += f"{k}: {v}\r\n"
        if chunked:
            enc = bytearray()
            for i in range(0, len(body), 16384):
                piece = body[i : i + 16384]
                enc += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
            enc += b"0\r\n\r\n"
            wire = (head + "transfer-encoding: chunked\r\n\r\n").encode() + bytes(enc)
        else:
            wire = (head + f"content-length: {len(body)}\r\n\r\n").encode() + body
        return kind, body, wire


# --------------------------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------------------------


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        return status, headers, bytes(body)
    n = int(headers.get("content-length", "0"))
    return status, headers, await reader.readexactly(n)


def reply_error(status: int, body: bytes) -> str | None:
    """The `error` category of an answer that is not the backend's 200 (None if it is)."""
    if status == 200 and body == harness.BACKEND_BODY:
        return None
    try:
        return json.loads(body).get("error")
    except (ValueError, AttributeError):
        return f"<non-JSON body {body[:60]!r}>"


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass


def finish_cli(report: dict, json_out: str | None, tag: str) -> int:
    """Print a driver's report (and its failed checks), write it to json_out; the exit code."""
    text = json.dumps(report, indent=2)
    print(text)
    for f in report["failures"]:
        print(f"{tag}: FAILED CHECK: {f}", file=sys.stderr)
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(text + "\n")
    return 0 if report["passed"] else 1


class Traffic:
    def __init__(self, cfg: SoakConfig, builder: Builder, port: int):
        self.cfg = cfg
        self.builder = builder
        self.port = port
        self.sent: list[Sent] = []
        self.next_seq = 0
        self.limit = 0
        self.deadline = 0.0
        self.truncated = False

    def take(self) -> int | None:
        if self.next_seq >= self.limit:
            return None
        if time.monotonic() > self.deadline:
            self.truncated = True
            return None
        seq = self.next_seq
        self.next_seq += 1
        return seq

    async def worker(self) -> None:
        reader = writer = None
        try:
            while True:
                seq = self.take()
                if seq is None:
                    return
                kind, body, wire = self.builder.build(seq)
                rec = Sent(seq, kind, hashlib.sha256(body).hexdigest())
                self.sent.append(rec)
                close = kind in RECONNECT_KINDS
                try:
                    if writer is None:
                        reader, writer = await asyncio.wait_for(
                            asyncio.open_connection("127.0.0.1", self.port), 5.0
                        )
                    writer.write(wire)
                    status, headers, resp_body = await asyncio.wait_for(
                        read_response(reader), self.cfg.request_timeout
                    )
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                        asyncio.TimeoutError, ValueError) as e:
                    rec.transport = f"{type(e).__name__}: {e}"[:200]
                    close = True
                else:
                    rec.status = status
                    rec.error = reply_error(status, resp_body)
                    if headers.get("connection", "").lower() == "close":
                        close = True
                if close and writer is not None:
                    await close_writer(writer)
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    async def phase(self, count: int, deadline: float) -> None:
        self.limit = min(self.cfg.requests, self.next_seq + count)
        self.deadline = deadline
        await asyncio.gather(*(self.worker() for _ in range(self.cfg.concurrency)))


# --------------------------------------------------------------------------------------------
# Observation
# --------------------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def vm_stats(stats: dict) -> dict[str, int]:
    return {
        k: v
        for k, v in stats.items()
        if isinstance(v, int)
        and (k.startswith("wasm.envoy.wasm.runtime.") or k == "wasm.wasm_vm_count"
             or k.startswith("wasm.lf_webhook_guard."))
    }


async def sample_rss(pid: int, out: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            out.append(rss_bytes(pid))
        except (OSError, RuntimeError):
            return
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except asyncio.TimeoutError:
            pass


def envoy_version(envoy_bin: str) -> str:
    try:
        out = subprocess.run([envoy_bin, "--version"], capture_output=True, text=True, timeout=20)
        m = re.search(r"version: \S+?/(\d+\.\d+\.\d+)", out.stdout)
        return m.group(1) if m else out.stdout.strip()[:80]
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# --------------------------------------------------------------------------------------------
# The soak
# --------------------------------------------------------------------------------------------


def run_soak(cfg: SoakConfig, progress=None) -> dict:
    say = progress or (lambda msg: None)
    yaml_path = Path(cfg.yaml) if cfg.yaml else harness.yaml_under_test()
    if not yaml_path.is_absolute():
        yaml_path = harness.REPO / yaml_path
    warmup = cfg.warmup if cfg.warmup is not None else max(200, min(20000, cfg.requests // 10))
    warmup = min(warmup, cfg.requests)
    run_id = os.urandom(3).hex()
    builder = Builder(run_id, cfg.seed, cfg.forged_ratio)
    failures: list[str] = []

    backend = harness.RecordingBackend().start()
    envoy = harness.Envoy(
        backend.port,
        yaml_path=yaml_path,
        envoy_bin=cfg.envoy_bin,
        wasm_path=cfg.wasm_path,
        concurrency=cfg.envoy_concurrency,
        log_level=cfg.log_level,
        without_filter=cfg.without_filter,
    )
    try:
        envoy.start()
        pid = envoy.proc.pid
        stats0 = envoy.stats()
        rss0 = rss_bytes(pid)
        traffic = Traffic(cfg, builder, envoy.listen_port)
        samples: list[int] = []

        async def drive():
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample_rss(pid, samples, stop))
            t0 = time.monotonic()
            deadline = t0 + cfg.duration
            await traffic.phase(warmup, deadline)
            t_warm = time.monotonic()
            say(f"warm-up: {traffic.next_seq} requests in {t_warm - t0:.1f}s")
            mid = (rss_bytes(pid), await asyncio.to_thread(envoy.stats))
            t1 = time.monotonic()
            await traffic.phase(cfg.requests, deadline)
            t_end = time.monotonic()
            stop.set()
            await sampler
            return t0, t_warm, t1, t_end, mid

        t0, t_warm, t1, t_end, (rss1, stats1) = asyncio.run(drive())
        sent = traffic.sent
        say(f"traffic: {len(sent)} requests in {t_end - t0:.1f}s")

        genuine = [s for s in sent if KINDS[s.kind][0]]
        forged = [s for s in sent if not KINDS[s.kind][0]]
        genuine_ok = [s for s in genuine if s.status == 200]
        # Let anything still in flight (or leaking) arrive before counting.
        backend.wait_requests(len(genuine_ok), timeout=10.0)
        time.sleep(0.5)
        stats2 = envoy.stats()
        rss2 = rss_bytes(pid)
        recorded = backend.requests()
        conns = backend.connections()
        log = envoy.log_text()
        running = envoy.running
    finally:
        envoy.close()
        backend.stop()

    # ---- exchanges ------------------------------------------------------------------------
    transport = [s for s in sent if s.transport]
    status_counts = Counter(s.status for s in sent if not s.transport)
    n5xx = sum(v for k, v in status_counts.items() if k >= 500)
    for s in transport[:5]:
        failures.append(f"transport error seq={s.seq} kind={s.kind}: {s.transport}")
    if len(transport) > 5:
        failures.append(f"... {len(transport)} transport errors in total")
    if n5xx:
        failures.append(f"{n5xx} responses with a 5xx status")
    wrong = [
        s for s in sent
        if not s.transport and (s.status, s.error) != (KINDS[s.kind][2], KINDS[s.kind][3])
    ]
    for s in wrong[:10]:
        failures.append(
            f"seq={s.seq} kind={s.kind}: got {s.status} {s.error!r}, "
            f"expected {KINDS[s.kind][2]} {KINDS[s.kind][3]!r}"
        )
    if len(wrong) > 10:
        failures.append(f"... {len(wrong)} wrong answers in total")

    # ---- what reached the backend ---------------------------------------------------------
    sent_by_marker = {builder.marker(s.seq): s for s in sent}
    marker_re = re.compile(rb"SOAK" + run_id.encode() + rb"-\d{8}")
    seen_raw: set[str] = set()
    for raw in conns:
        seen_raw.update(m.decode() for m in marker_re.findall(raw))
    unknown = sorted(seen_raw - set(sent_by_marker))
    if unknown:
        failures.append(f"{len(unknown)} unknown markers on the backend: {unknown[:5]}")
    leaked = sorted(m for m in seen_raw - set(unknown) if not KINDS[sent_by_marker[m].kind][0])
    if leaked:
        failures.append(f"{len(leaked)} forged requests have bytes on the backend: {leaked[:5]}")
    if len(recorded) != len(genuine):
        failures.append(f"backend parsed {len(recorded)} requests, {len(genuine)} genuine sent")
    want = Counter(s.digest for s in genuine)
    got = Counter(hashlib.sha256(r.body).hexdigest() for r in recorded)
    if want != got:
        failures.append(
            f"backend body digests differ from the genuine ones sent: "
            f"{sum((want - got).values())} missing, {sum((got - want).values())} unexpected"
        )
    bad_verified = 0
    for r in recorded:
        s = sent_by_marker.get(r.header("x-soak-seq") or "")
        expect = f"cube; key={CUBE_KEY_ID}" if s and s.kind == "cube" else "md5; key=demo"
        if s is None or r.header_all("x-lf-verified") != [expect]:
            bad_verified += 1
    if bad_verified:
        failures.append(f"{bad_verified} backend requests without the expected x-lf-verified")

    # ---- Envoy: VM health, counters, memory ----------------------------------------------
    if not running:
        failures.append("Envoy is not running at the end of the soak")
    vm0, vm2 = vm_stats(stats0), vm_stats(stats2)
    for name in ("wasm.envoy.wasm.runtime.v8.created", "wasm.envoy.wasm.runtime.v8.active",
                 "wasm.wasm_vm_count"):
        if name not in vm0:
            failures.append(f"stat {name} missing")
        elif vm0[name] != vm2.get(name):
            failures.append(f"{name} changed during the soak: {vm0[name]} -> {vm2.get(name)}")
    for name, value in vm2.items():
        if name.startswith("wasm.lf_webhook_guard.vm_reload") and value:
            failures.append(f"{name} = {value}")
    log_lines = log.splitlines()
    bad_log = [line for line in log_lines if PANIC_RE.search(line) or "][error][" in line]
    if bad_log:
        failures.append(f"{len(bad_log)} panic/critical/error/VM-failure log lines, e.g. "
                        f"{bad_log[0]}")
    # docs/reference.md "Logs": each rejection is one warn line.
    rejection_lines = sum(1 for line in log_lines if "lf-webhook-guard: rejected " in line)
    if not cfg.without_filter and rejection_lines != len(forged):
        failures.append(f"{rejection_lines} rejection log lines for {len(forged)} forged requests")

    lf0, lf2 = lf_counters(stats0), lf_counters(stats2)
    delta = {k: lf2.get(k, 0) - lf0.get(k, 0) for k in lf2}
    kinds = Counter(s.kind for s in sent)
    expected_counters = {k: 0 for k in delta}
    expected_counters["requests_total"] = len(sent)
    expected_counters["verified.scheme=md5.key=demo"] = kinds["md5_json"] + kinds["md5_form"]
    expected_counters[f"verified.scheme=cube.key={CUBE_KEY_ID}"] = kinds["cube"]
    for k in FORGED_KINDS:
        name = f"rejected.reason={KINDS[k][3]}"
        expected_counters[name] = expected_counters.get(name, 0) + kinds[k]
    counter_diff = {
        k: {"counted": delta.get(k), "sent": v}
        for k, v in expected_counters.items() if delta.get(k) != v
    }
    if counter_diff:
        failures.append(f"filter counters differ from the sent mix: {counter_diff}")

    mem0 = stats0.get("server.memory_allocated", 0)
    mem1 = stats1.get("server.memory_allocated", 0)
    mem2 = stats2.get("server.memory_allocated", 0)
    growth = rss2 - rss1
    if growth > RSS_GROWTH_LIMIT:
        failures.append(f"Envoy RSS grew {growth / MIB:.1f} MiB after warm-up (limit 50 MiB)")
    if mem2 - mem1 > RSS_GROWTH_LIMIT:
        failures.append(f"server.memory_allocated grew {(mem2 - mem1) / MIB:.1f} MiB after warm-up")

    # Downstream connections per Envoy worker: with --concurrency 2 both workers (and so both
    # Wasm VMs) must have taken traffic, or the soak did not exercise what it claims.
    per_worker = {
        m.group(1): v
        for k, v in stats2.items()
        if (m := re.match(r"listener\.127\.0\.0\.1_\d+\.(worker_\d+)\.downstream_cx_total$", k))
    }
    if cfg.envoy_concurrency > 1 and len([v for v in per_worker.values() if v]) < 2:
        failures.append(f"traffic did not reach two Envoy workers: {per_worker}")
    plugin = json.loads(harness.embedded_plugin_config(yaml_path))

    main_n = len(sent) - warmup
    duration = t_end - t0
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "envoy_version": envoy_version(envoy.envoy_bin),
        "yaml": str(yaml_path.relative_to(harness.REPO)) if yaml_path.is_relative_to(
            harness.REPO) else str(yaml_path),
        "mode": "hold" if harness.holds_headers(yaml_path) else "buffer",
        "envoy_concurrency": cfg.envoy_concurrency,
        "downstream_connections_per_worker": per_worker,
        "dedup_in_config": "dedup" in plugin
        or any("dedup" in r for r in plugin.get("routes", [])),
        "client_concurrency": cfg.concurrency,
        "requests_asked": cfg.requests,
        "requests": len(sent),
        "truncated_by_duration_cap": traffic.truncated,
        "warmup_requests": min(warmup, len(sent)),
        "genuine": len(genuine),
        "forged": len(forged),
        "by_kind": dict(sorted(kinds.items())),
        "statuses": {str(k): v for k, v in sorted(status_counts.items())},
        "status_5xx": n5xx,
        "transport_errors": len(transport),
        "rejection_log_lines": rejection_lines,
        "backend_requests": len(recorded),
        "backend_bytes": sum(len(c) for c in conns),
        "forged_markers_on_backend": len(leaked),
        "vm_failures": sum(v for k, v in vm2.items() if k.startswith("wasm.lf_webhook_guard.vm_reload"))
        + abs(vm2.get("wasm.envoy.wasm.runtime.v8.created", 0)
              - vm0.get("wasm.envoy.wasm.runtime.v8.created", 0)),
        "vm_stats_before": vm0,
        "vm_stats_after": vm2,
        "filter_counters": {k: v for k, v in delta.items() if v},
        "duration_s": round(duration, 2),
        "req_per_s": round(len(sent) / duration, 1) if duration else None,
        "req_per_s_after_warmup": round(main_n / (t_end - t1), 1) if t_end > t1 else None,
        "rss_mib": {
            "before_warmup": round(rss0 / MIB, 1),
            "after_warmup": round(rss1 / MIB, 1),
            "end": round(rss2 / MIB, 1),
            "max_sampled": round(max(samples + [rss2]) / MIB, 1),
            "growth_after_warmup": round(growth / MIB, 1),
        },
        "memory_allocated_mib": {
            "before_warmup": round(mem0 / MIB, 1),
            "after_warmup": round(mem1 / MIB, 1),
            "end": round(mem2 / MIB, 1),
        },
        "watchdog_misses": stats2.get("server.watchdog_miss", 0)
        + stats2.get("workers.watchdog_miss", 0),
        "failures": failures,
        "passed": not failures,
    }
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--concurrency", type=int, default=64, help="client connections")
    ap.add_argument("--forged-ratio", type=float, default=0.4)
    ap.add_argument("--envoy-concurrency", type=int, default=2)
    ap.add_argument("--duration", type=float, default=900.0,
                    help="cap in seconds on the traffic phase (stops issuing new requests)")
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--yaml", default=None, help="shipped Envoy YAML (default envoy/envoy.yaml "
                    "or $LF_E2E_ENVOY_YAML)")
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--json-out", default=None, help="write the report here")
    args = ap.parse_args(argv)
    cfg = SoakConfig(
        requests=args.requests,
        concurrency=args.concurrency,
        forged_ratio=args.forged_ratio,
        envoy_concurrency=args.envoy_concurrency,
        duration=args.duration,
        warmup=args.warmup,
        yaml=args.yaml,
        seed=args.seed,
    )
    report = run_soak(cfg, progress=lambda m: print(f"soak: {m}", file=sys.stderr, flush=True))
    report["config"] = asdict(cfg)
    r = report["rss_mib"]
    print(
        f"soak: {'PASS' if report['passed'] else 'FAIL'} {report['mode']} mode: "
        f"{report['requests']} requests ({report['genuine']} genuine, {report['forged']} forged) "
        f"x {cfg.concurrency} connections, Envoy --concurrency {cfg.envoy_concurrency}, "
        f"{report['duration_s']} s, {report['req_per_s']} req/s; RSS {r['before_warmup']} -> "
        f"{r['after_warmup']} -> {r['end']} MiB (max {r['max_sampled']}); "
        f"5xx {report['status_5xx']}, VM failures {report['vm_failures']}, "
        f"forged on backend {report['forged_markers_on_backend']}",
        file=sys.stderr,
    )
    return finish_cli(report, args.json_out, "soak")


if __name__ == "__main__":
    sys.exit(main())
