"""Flood driver: a hostile flood from 127.0.0.2 against a real Envoy running a
shipped config (with its shipped limits), while genuine traffic comes from 127.0.0.1; then an
account of what Envoy did. Importable (`run_flood(FloodConfig(...))` returns the report dict;
`report["failures"]` lists every violated expectation; tests/e2e/production/test_limits.py is the short
version) and runnable as a script (`make flood`):

    .venv/bin/python tests/e2e/production/flood.py --hold-conns 3000 --flood-s 120 --json-out bench/results/flood.json

The flood (all from 127.0.0.2, every request signed with a wrong secret and carrying a marker
`FLOOD<run>-...` in its body and in `x-flood`):
- `hold_conns` HTTP/1.1 connections that each send headers (content-length 65,000) and 60,000
  body bytes, then nothing: held in the filter until Envoy cuts them; each reconnects at once;
- `trickle_conns` connections that send the headers, then one body byte every `trickle_every_s`
  (a stream that is never idle: only a total deadline ends it);
- `h2_conns` h2c connections opening `h2_streams` streams each (beyond the advertised
  MAX_CONCURRENT_STREAMS: the client's own limit is lifted), each stream with up to 60,000 body
  bytes, reopening streams as Envoy resets them;
- `forged_workers` clients sending complete forged requests of every forged kind (load.Load).
Genuine traffic: `genuine_workers` load.Load clients from 127.0.0.1 (genuine kinds only, half of
them on a new connection each time), before, during and after the flood.

Checks (`failures`): Envoy is up at the end (same pid); its RSS never exceeds the configured bound
(the fixed_heap monitor's max_heap_size_bytes, read from the config); no forged byte on the
backend (flood markers, forged markers); every genuine request answered 200 was delivered to the
backend exactly once, byte for byte; a genuine request that is not 200 got a 5xx or failed at the
connection level (never a 4xx, never a 2xx without delivery); after the flood stops a genuine
request on a new connection gets 200 within 10 s; and the limits engaged (connections refused at
the global limit, streams refused beyond MAX_CONCURRENT_STREAMS, held and trickling streams cut).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # load.py (it adds lib/ and soak/)

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.errors  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402
import h2.settings  # noqa: E402
import yaml  # noqa: E402

import load  # noqa: E402  (first: puts lib/ and soak/ on sys.path)

import harness  # noqa: E402
import lfsign  # noqa: E402
import soak_driver as soak  # noqa: E402

FLOOD_SRC = "127.0.0.2"
GENUINE_SRC = "127.0.0.1"
DECLARED = 65000  # content-length of a held request (under max_body_bytes: the filter waits)
HELD = 60000  # body bytes a held request sends
RECOVERY_LIMIT_S = 10.0
MIB = 1024 * 1024


@dataclass
class FloodConfig:
    yaml: str | None = None  # default: $LF_E2E_ENVOY_YAML or envoy/envoy.yaml
    envoy_bin: str | None = None
    wasm_path: str | None = None
    envoy_concurrency: int = 2
    hold_conns: int = 1200
    trickle_conns: int = 100
    trickle_every_s: float = 3.0
    h2_conns: int = 8
    h2_streams: int = 150
    forged_workers: int = 4
    genuine_workers: int = 8
    baseline_s: float = 3.0
    flood_s: float = 40.0
    after_s: float = 12.0


def limits_of(cfg: dict) -> dict:
    """The shipped limits of an Envoy config (what the checks compare against)."""
    om = cfg.get("overload_manager", {})
    out: dict = {}
    for mon in om.get("resource_monitors", []):
        tc = mon.get("typed_config", {})
        if "max_heap_size_bytes" in tc:
            out["max_heap_size_bytes"] = int(tc["max_heap_size_bytes"])
        if "max_active_downstream_connections" in tc:
            out["max_active_downstream_connections"] = int(tc["max_active_downstream_connections"])
    (hcm,) = harness._http_connection_managers(cfg)
    for k in ("request_timeout", "request_headers_timeout", "stream_idle_timeout"):
        if k in hcm:
            out[k] = float(str(hcm[k]).rstrip("s"))
    h2o = hcm.get("http2_protocol_options", {})
    if "max_concurrent_streams" in h2o:
        out["max_concurrent_streams"] = int(h2o["max_concurrent_streams"])
    return out


class Flood:
    """The attackers, on an asyncio loop in a thread (start() / stop())."""

    def __init__(self, port: int, cfg: FloodConfig, run_id: str):
        self.port = port
        self.cfg = cfg
        self.run_id = run_id
        self.sig = lfsign.sign_body(b'{"a":"b"}', "flood-wrong-secret", "json")
        self.outcomes: Counter = Counter()  # (kind, outcome) per connection / stream
        self.lifetimes: dict[str, list[float]] = {"hold": [], "trickle": []}
        self.h2_settings: list[int] = []  # MAX_CONCURRENT_STREAMS advertised per connection
        self.h2_refused = 0
        self.h2_reset = 0
        self.h2_max_open = 0
        self.connects = Counter()  # kind -> connection attempts
        self.open_now = 0
        self.max_open = 0
        self._n = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Flood":
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(60)

    def marker(self, kind: str) -> bytes:
        self._n += 1
        return f"FLOOD{self.run_id}-{kind}-{self._n:07d}".encode()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        tasks = [asyncio.create_task(self._h2(i)) for i in range(self.cfg.h2_conns)]
        tasks += [asyncio.create_task(self._holder(i, trickle=True))
                  for i in range(self.cfg.trickle_conns)]
        for i in range(self.cfg.hold_conns):
            tasks.append(asyncio.create_task(self._holder(i, trickle=False)))
            if i % 50 == 49:
                await asyncio.sleep(0.01)  # ramp up: the accept queue is not the test
        await self._stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _connect(self, kind: str):
        self.connects[kind] += 1
        return await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.port, local_addr=(FLOOD_SRC, 0)), 5.0)

    async def _until_stop(self, aw, timeout: float | None = None):
        """Await aw unless stop comes first (then None)."""
        task = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self._stop.wait())
        done, _ = await asyncio.wait({task, stop}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if task in done:
            return task.result()
        task.cancel()
        return None

    async def _holder(self, i: int, *, trickle: bool) -> None:
        kind = "trickle" if trickle else "hold"
        while not self._stop.is_set():
            try:
                reader, writer = await self._connect(kind)
            except (OSError, asyncio.TimeoutError):
                self.outcomes[(kind, "connect_failed")] += 1
                await asyncio.sleep(0.2)
                continue
            t0 = time.monotonic()
            self.open_now += 1
            self.max_open = max(self.max_open, self.open_now)
            m = self.marker(kind)
            head = (f"POST /linksfield/notify HTTP/1.1\r\nhost: lf-flood.test\r\n"
                    f"content-type: application/json\r\nx-lf-md5: {self.sig}\r\n"
                    f"x-flood: {m.decode()}\r\ncontent-length: {DECLARED}\r\n\r\n").encode()
            body = (b'{"text_message":"' + m + b'","pad":"').ljust(HELD, b"x")
            outcome = "stopped"
            try:
                writer.write(head)
                if not trickle:
                    writer.write(body)
                await writer.drain()
                read = asyncio.ensure_future(reader.read(4096))
                k = 0
                while not self._stop.is_set():
                    done = await self._until_stop(asyncio.shield(read),
                                                  self.cfg.trickle_every_s if trickle else None)
                    if read.done():
                        data = read.result()
                        mm = re.match(rb"HTTP/1\.1 (\d{3})", data)
                        outcome = mm.group(1).decode() if mm else ("closed" if not data
                                                                   else "garbage")
                        break
                    if done is None and trickle and not self._stop.is_set():
                        writer.write(body[k:k + 1])
                        k += 1
                        await writer.drain()
                if not read.done():
                    read.cancel()
            except (OSError, asyncio.IncompleteReadError) as e:
                outcome = "reset" if isinstance(e, ConnectionResetError) else type(e).__name__
            finally:
                self.open_now -= 1
                writer.close()
            life = time.monotonic() - t0
            self.outcomes[(kind, outcome)] += 1
            if outcome != "stopped":
                self.lifetimes[kind].append(life)
            if life < 1.0:
                await asyncio.sleep(0.2)  # refused at once: do not spin

    async def _h2(self, i: int) -> None:
        while not self._stop.is_set():
            try:
                reader, writer = await self._connect("h2")
            except (OSError, asyncio.TimeoutError):
                self.outcomes[("h2", "connect_failed")] += 1
                await asyncio.sleep(0.2)
                continue
            conn = h2.connection.H2Connection(
                h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
            conn.initiate_connection()
            open_streams: set[int] = set()
            refused_here = 0  # refused streams are not reopened (no busy loop)
            settings_seen = False
            # Even connections open h2_streams streams (beyond the limit: Envoy closes the
            # connection with a protocol error), odd ones stay within the advertised limit (the
            # streams are held until a deadline answers them).
            target = self.cfg.h2_streams
            try:
                writer.write(conn.data_to_send())
                while not self._stop.is_set():
                    if settings_seen:
                        while len(open_streams) + refused_here < target:
                            sid = conn.get_next_available_stream_id()
                            m = self.marker("h2")
                            conn.send_headers(sid, [
                                (":method", "POST"), (":path", "/linksfield/notify"),
                                (":scheme", "http"), (":authority", "lf-flood.test"),
                                ("content-type", "application/json"), ("x-lf-md5", self.sig),
                                ("x-flood", m.decode()), ("content-length", str(DECLARED))])
                            open_streams.add(sid)
                            n = min(HELD, conn.local_flow_control_window(sid))
                            data = (b'{"text_message":"' + m + b'"').ljust(n, b"x")
                            step = conn.max_outbound_frame_size
                            for off in range(0, n, step):
                                conn.send_data(sid, data[off:off + step])
                        self.h2_max_open = max(self.h2_max_open, len(open_streams))
                    writer.write(conn.data_to_send())
                    await writer.drain()
                    data = await self._until_stop(reader.read(65536))
                    if not data:
                        self.outcomes[("h2", "closed" if data == b"" else "stopped")] += 1
                        break
                    for ev in conn.receive_data(data):
                        if isinstance(ev, h2.events.RemoteSettingsChanged):
                            mcs = ev.changed_settings.get(
                                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
                            if mcs is not None:
                                self.h2_settings.append(mcs.new_value)
                                if i % 2:
                                    target = min(target, mcs.new_value)
                            # Lift the client's own limit: Envoy must enforce it.
                            conn.remote_settings._settings[
                                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = \
                                collections.deque([2 ** 31 - 1])
                            settings_seen = True
                        elif isinstance(ev, h2.events.StreamReset):
                            open_streams.discard(ev.stream_id)
                            if ev.error_code == h2.errors.ErrorCodes.REFUSED_STREAM:
                                self.h2_refused += 1
                                refused_here += 1
                            else:
                                self.h2_reset += 1
                        elif isinstance(ev, h2.events.ResponseReceived):
                            status = dict(ev.headers).get(":status", "?")
                            self.outcomes[("h2", status)] += 1
                        elif isinstance(ev, h2.events.StreamEnded):
                            open_streams.discard(ev.stream_id)
                        elif isinstance(ev, h2.events.ConnectionTerminated):
                            self.outcomes[("h2", f"goaway_{ev.error_code}")] += 1
            except (OSError, h2.exceptions.ProtocolError, asyncio.IncompleteReadError) as e:
                self.outcomes[("h2", type(e).__name__)] += 1
            finally:
                writer.close()
            await asyncio.sleep(0.2)


def _genuine_probe(port: int, run_id: str) -> bool:
    """One genuine notification on a new connection from 127.0.0.1: 200 or not."""
    body = json.dumps({"partner_code": "P123456", "text_message": f"probe {run_id}"}).encode()
    try:
        resp = harness.send_request(
            port, "POST", "/linksfield/notify",
            [("content-type", "application/json"),
             ("x-lf-md5", lfsign.sign_body(body, soak.SECRET, "json"))], body, timeout=3.0)
    except (OSError, harness.HarnessError):
        return False
    return resp.status == 200


def run_flood(cfg: FloodConfig, progress=None) -> dict:
    say = progress or (lambda msg: None)
    yaml_path = Path(cfg.yaml) if cfg.yaml else harness.yaml_under_test()
    if not yaml_path.is_absolute():
        yaml_path = harness.REPO / yaml_path
    limits = limits_of(yaml.safe_load(yaml_path.read_text()))
    failures: list[str] = []
    for k in ("max_heap_size_bytes", "max_active_downstream_connections", "request_timeout",
              "stream_idle_timeout", "max_concurrent_streams"):
        if k not in limits:
            failures.append(f"{yaml_path.name} ships no {k}")
    if failures:
        return {"failures": failures, "passed": False, "limits": limits}
    run_id = os.urandom(3).hex()
    backend = harness.RecordingBackend().start()
    envoy = harness.Envoy(backend.port, yaml_path=yaml_path, envoy_bin=cfg.envoy_bin,
                          wasm_path=cfg.wasm_path, concurrency=cfg.envoy_concurrency,
                          log_level="warning")
    genuine_b = soak.Builder(run_id + "g", seed=41, forged_ratio=0.0)
    forged_b = soak.Builder(run_id + "f", seed=42, forged_ratio=1.0)
    samples: list[tuple[float, int]] = []
    stats_samples: list[dict] = []
    try:
        envoy.start()
        pid = envoy.proc.pid
        rss_idle = soak.rss_bytes(pid)
        stats0 = envoy.stats()
        sampling = threading.Event()

        def sample():
            while not sampling.is_set():
                try:
                    samples.append((time.monotonic(), soak.rss_bytes(pid)))
                except (OSError, RuntimeError):
                    return
                sampling.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        genuine = load.Load(envoy.listen_port, genuine_b, workers=cfg.genuine_workers,
                            slow_ratio=0.2, new_conn_ratio=0.5, source=GENUINE_SRC,
                            timeout=20.0, pace=0.02, seed=43).start()
        time.sleep(cfg.baseline_s)
        t_flood = time.monotonic()
        say(f"flood: {cfg.hold_conns} held + {cfg.trickle_conns} trickling + "
            f"{cfg.h2_conns}x{cfg.h2_streams} h2 streams from {FLOOD_SRC}")
        flood = Flood(envoy.listen_port, cfg, run_id).start()
        forged = load.Load(envoy.listen_port, forged_b, workers=cfg.forged_workers,
                           slow_ratio=0.2, new_conn_ratio=0.5, source=FLOOD_SRC, timeout=20.0,
                           seed=44).start()
        while time.monotonic() < t_flood + cfg.flood_s:
            time.sleep(min(2.0, t_flood + cfg.flood_s - time.monotonic()))
            try:
                stats_samples.append(envoy.stats())
            except (OSError, harness.HarnessError):
                pass
            say(f"flood: +{time.monotonic() - t_flood:.0f}s open={flood.open_now} "
                f"rss={samples[-1][1] / MIB:.0f} MiB genuine={len(genuine.exchanges)}")
        forged_ex = forged.stop()
        flood.stop()
        t_stop = time.monotonic()
        recovered_after = None
        while time.monotonic() < t_stop + RECOVERY_LIMIT_S + 5:
            if _genuine_probe(envoy.listen_port, run_id):
                recovered_after = time.monotonic() - t_stop
                break
            time.sleep(0.2)
        say(f"flood stopped; genuine 200 on a new connection after {recovered_after} s")
        time.sleep(max(0.0, t_stop + cfg.after_s - time.monotonic()))
        genuine_ex = genuine.stop()
        sampling.set()
        sampler.join(5)
        time.sleep(0.5)
        stats2 = envoy.stats()
        running = envoy.running and envoy.proc.pid == pid
        log = envoy.log_text()
        raw = backend.raw()
        acc_g = load.account(genuine_ex, backend, genuine_b)
        acc_f = load.account(forged_ex, backend, forged_b)
    finally:
        envoy.close()
        backend.stop()

    # ---- checks ---------------------------------------------------------------------------
    if not running:
        failures.append("Envoy is not running (or was restarted) at the end of the flood")
    bound = limits["max_heap_size_bytes"]
    rss_max = max(r for _, r in samples)
    if rss_max > bound:
        failures.append(f"Envoy RSS reached {rss_max / MIB:.0f} MiB > bound {bound / MIB:.0f} MiB")
    flood_markers = len(re.findall(rb"FLOOD" + run_id.encode(), raw))
    if flood_markers:
        failures.append(f"{flood_markers} flood markers on the backend")
    if acc_f.forged_on_backend or acc_g.forged_on_backend:
        failures.append(f"forged requests on the backend: {acc_f.forged_on_backend[:5]}")
    if not acc_g.digests_ok:
        failures.append("a backend body is not a genuine body that was sent")
    bad_genuine = []
    for e in genuine_ex:
        d = acc_g.delivered[e.marker]
        if e.status == 200 and not e.transport and d != 1:
            bad_genuine.append(f"seq={e.seq}: 200 but delivered {d}x")
        elif not e.transport and e.status != 200 and (e.status < 500 or d > 1):
            bad_genuine.append(f"seq={e.seq}: {e.status} {e.error} (delivered {d}x)")
        elif d > 1:
            bad_genuine.append(f"seq={e.seq}: delivered {d}x")
    if bad_genuine:
        failures.append(f"{len(bad_genuine)} genuine answered wrongly: {bad_genuine[:5]}")
    wrong_forged = [e for e in forged_ex if not e.transport and e.status == 200]
    if wrong_forged:
        failures.append(f"{len(wrong_forged)} forged requests answered 200")
    if recovered_after is None or recovered_after > RECOVERY_LIMIT_S:
        failures.append(f"no genuine 200 within {RECOVERY_LIMIT_S} s of the flood stopping "
                        f"({recovered_after})")
    overflow = sum(v for k, v in stats2.items()
                   if k.endswith("downstream_global_cx_overflow") and isinstance(v, int))
    if overflow == 0:
        failures.append("no connection was refused at the global connection limit "
                        "(downstream_global_cx_overflow = 0): the flood did not reach it")
    if not flood.h2_settings or set(flood.h2_settings) != {limits["max_concurrent_streams"]}:
        failures.append(f"h2 MAX_CONCURRENT_STREAMS advertised {flood.h2_settings}")
    deadline = limits["request_timeout"] + 5.0
    trickle_cut = [x for x in flood.lifetimes["trickle"] if x > 1.0]
    if cfg.flood_s > deadline and not trickle_cut:
        failures.append("no trickling connection was cut by the request deadline")
    if any(x > deadline for x in flood.lifetimes["trickle"]):
        failures.append(f"a trickling connection lived {max(flood.lifetimes['trickle']):.1f} s "
                        f"> request_timeout + 5 s")
    hold_cut = [x for x in flood.lifetimes["hold"] if x > 1.0]
    idle_deadline = min(limits["stream_idle_timeout"], limits["request_timeout"]) + 5.0
    if cfg.flood_s > idle_deadline and not hold_cut:
        failures.append("no held connection was cut by the idle deadline")
    if any(x > idle_deadline for x in hold_cut):
        failures.append(f"a held connection lived {max(hold_cut):.1f} s")
    protocol_errors = stats2.get("http.ingress.downstream_cx_protocol_error", 0) - \
        stats0.get("http.ingress.downstream_cx_protocol_error", 0)
    if cfg.h2_conns > 1 and cfg.h2_streams > limits["max_concurrent_streams"] and \
            not (flood.h2_refused or protocol_errors):
        failures.append("no h2 stream beyond MAX_CONCURRENT_STREAMS was refused "
                        "(no REFUSED_STREAM, no downstream_cx_protocol_error)")
    if cfg.h2_conns > 1 and cfg.flood_s > idle_deadline and not any(
            k == "h2" and o.isdigit() for k, o in flood.outcomes):
        failures.append("no held h2 stream was answered by a deadline")
    if re.search(r"\[critical\]|panicked", log):
        failures.append("critical/panic line in Envoy's log")

    # ---- figures --------------------------------------------------------------------------
    def rate(exs, t0, t1):
        ok = [e for e in exs if e.status == 200 and not e.transport and t0 <= e.t_end < t1]
        return round(len(ok) / (t1 - t0), 1) if t1 > t0 else None

    during = [e for e in genuine_ex if t_flood <= e.t_start < t_stop]
    cx_active = [s.get("http.ingress.downstream_cx_active", 0) for s in stats_samples]
    heap = [s.get("server.memory_heap_size", 0) for s in stats_samples]
    overload = {k: v for k, v in stats2.items() if k.startswith("overload.") and isinstance(v, int)
                and v and not k.endswith("pressure")}
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "envoy_version": soak.envoy_version(envoy.envoy_bin),
        "yaml": yaml_path.name,
        "mode": "hold" if harness.holds_headers(yaml_path) else "buffer",
        "config": asdict(cfg),
        "limits": limits,
        "rss_mib": {"idle": round(rss_idle / MIB, 1), "max": round(rss_max / MIB, 1),
                    "bound": round(bound / MIB, 1)},
        "heap_mib_max": round(max(heap, default=0) / MIB, 1),
        "downstream_cx_active_max": max(cx_active, default=0),
        "flood_connections_open_max": flood.max_open,
        "flood_connect_attempts": dict(flood.connects),
        "downstream_global_cx_overflow": overflow,
        "flood_outcomes": {f"{k}:{o}": v for (k, o), v in sorted(flood.outcomes.items())},
        "trickle_lifetime_s_max": round(max(flood.lifetimes["trickle"], default=0), 1),
        "hold_lifetime_s_max": round(max(hold_cut, default=0), 1),
        "h2_max_concurrent_streams": sorted(set(flood.h2_settings)),
        "h2_refused_streams": flood.h2_refused,
        "h2_connections_closed_for_too_many_streams": protocol_errors,
        "h2_reset_streams": flood.h2_reset,
        "genuine": load.summary(genuine_ex),
        "genuine_during_flood": load.summary(during),
        "genuine_ok_per_s": {"before": rate(genuine_ex, t_flood - cfg.baseline_s, t_flood),
                             "during": rate(genuine_ex, t_flood, t_stop),
                             "after": rate(genuine_ex, t_stop, t_stop + cfg.after_s)},
        "forged": load.summary(forged_ex),
        "recovered_after_s": None if recovered_after is None else round(recovered_after, 2),
        "overload_stats": overload,
        "genuine_answers": {f"{s} {e}": n for (s, e), n in sorted(Counter(
            (x.status, x.error) for x in genuine_ex if not x.transport).items())},
        "envoy_5xx_stats": {k: v for k, v in stats2.items() if isinstance(v, int) and v and (
            "5xx" in k or "overflow" in k or "503" in k or "wasm" in k and "fail" in k
            or k.startswith("cluster.backend.upstream_cx_") and "active" in k)},
        "log_problems": [line[:300] for line in log.splitlines()
                         if "][error][" in line or "][critical][" in line][:10],
        "downstream_cx_total": stats2.get("http.ingress.downstream_cx_total", 0)
        - stats0.get("http.ingress.downstream_cx_total", 0),
        "failures": failures,
        "passed": not failures,
    }
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    d = FloodConfig()
    for f, v in asdict(d).items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            ap.add_argument("--" + f.replace("_", "-"), type=type(v), default=v)
    ap.add_argument("--yaml", default=None)
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args(argv)
    cfg = FloodConfig(**{f: getattr(args, f) for f in asdict(d) if hasattr(args, f)})
    report = run_flood(cfg, progress=lambda m: print(f"flood: {m}", file=sys.stderr, flush=True))
    return soak.finish_cli(report, args.json_out, "flood")


if __name__ == "__main__":
    sys.exit(main())
