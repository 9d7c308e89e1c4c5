#!/usr/bin/env python3
"""Side-by-side Envoy benchmark for lf-webhook-guard (issue 7). Run via `make bench`.

Starts, on 127.0.0.1 only, one upstream Envoy that answers every request itself
(direct_response: the same, cheap upstream for every configuration) and one Envoy per
configuration under test (all `--concurrency 1`), then drives them with wrk (closed loop,
bounded in time) in interleaved order: for each repetition, for each body size, every
configuration once (A B C ... A B C ...). Per run it records:

  - Envoy CPU: utime+stime deltas of the Envoy under test from /proc/<pid>/stat, divided by the
    delta of its admin counter http.bench.downstream_rq_completed;
  - total CPU: the same plus any helper process (the ext_authz service); the upstream Envoy and
    wrk are identical for every configuration and left out;
  - requests/s, p50 and p99 latency from wrk;
  - response classes (2xx/4xx from Envoy's stats) to prove every request was accepted (or, for
    the forged run, rejected).

Medians over the repetitions go to bench/results/results.{md,json} and a chart
bench/results/envoy-cpu.svg. Everything is bounded: BENCH_SECONDS per run (default 3),
BENCH_REPS repetitions (default 3), BENCH_CONNECTIONS wrk connections (default 4).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
OUT = BENCH / "out"

ENVOY = os.environ.get("ENVOY_BIN") or str(REPO / ".venv" / "bin" / "envoy")
WRK = os.environ.get("WRK_BIN") or shutil.which("wrk") or "wrk"
GUARD_WASM = REPO / "target" / "wasm32-wasip1" / "release" / "lf_webhook_guard.wasm"
FLOOR_WASM = (
    BENCH / "floor-filter" / "target" / "wasm32-wasip1" / "release" / "lf_bench_floor_filter.wasm"
)
AUTHZ_BIN = BENCH / "authz-service" / "target" / "release" / "lf-bench-authz-service"
LUA_SCRIPT = BENCH / "lua" / "lf_md5.lua"

SECONDS = int(os.environ.get("BENCH_SECONDS", "3"))  # wrk takes whole seconds
REPS = int(os.environ.get("BENCH_REPS", "3"))
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "4"))
SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "256,1024,16384").split(",")]
ONLY = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]

SECRET = "bench-secret-0123=xyz"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROTECTED = "/linksfield/sms"
UNPROTECTED = "/health/sms"

PLUGIN_CONFIG = json.dumps(
    {
        "keys": [{"id": "bench", "secret_env": "LF_WEBHOOK_SECRET", "schemes": ["md5"]}],
        "routes": [
            {"name": "linksfield", "path_prefix": "/linksfield/", "methods": ["POST"], "scheme": "md5"}
        ],
        "max_body_bytes": 65536,
    }
)

# --------------------------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------------------------


def make_body(size: int) -> bytes:
    """A flat JSON notification of exactly `size` bytes (string values, no escapes)."""
    base = {
        "partner_code": "P123456",
        "sim_id": "89860220190123456789",
        "imsi": "4230001234567",
        "message_type": "Text",
        "text_message": "device status: 1234",
        "received_at": "1642385160000",
    }
    i = 0
    while True:
        text = json.dumps(base, separators=(",", ":"))
        missing = size - len(text)
        if missing <= 0:
            break
        # Each extra field costs len('"fNN":""') + 1 (comma) + value length.
        key = f"f{i:02d}"
        overhead = len(key) + 6
        val_len = min(max(missing - overhead, 0), 200)
        base[key] = ("abcdefghij klmnopqrstuvwxyz:0123456789-" * 8)[:val_len]
        i += 1
    # Trim the last value to land exactly on `size`.
    while len(text) > size:
        last = list(base)[-1]
        base[last] = base[last][: len(base[last]) - (len(text) - size)]
        text = json.dumps(base, separators=(",", ":"))
    assert len(text) == size, (len(text), size)
    return text.encode()


def sign_md5(body: bytes, secret: str) -> str:
    """Independent signer (hashlib): sorted params, `k=v&...&SECRET`, base64(hex(md5))."""
    obj = json.loads(body)
    text = "&".join(f"{k}={obj[k]}" for k in sorted(obj)) + "&" + secret
    return base64.b64encode(hashlib.md5(text.encode()).hexdigest().encode()).decode()


# --------------------------------------------------------------------------------------------
# Envoy configurations
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wasm_filter(name: str, path: Path, configuration: str, hold: bool) -> dict:
    return {
        "name": name,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": name,
                "root_id": name,
                "allow_on_headers_stop_iteration": hold,
                "fail_open": False,
                "vm_config": {
                    "vm_id": name,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": str(path)}},
                    "environment_variables": {"host_env_keys": ["LF_WEBHOOK_SECRET"]},
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": configuration,
                },
            },
        },
    }


def lua_filter() -> dict:
    return {
        "name": "envoy.filters.http.lua",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"filename": str(LUA_SCRIPT)},
        },
    }


def ext_authz_filter() -> dict:
    return {
        "name": "envoy.filters.http.ext_authz",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "transport_api_version": "V3",
            "failure_mode_allow": False,
            "with_request_body": {"max_request_bytes": 65536, "allow_partial_message": False},
            "allowed_headers": {
                "patterns": [{"exact": "content-type"}, {"prefix": "x-lf-"}],
            },
            "http_service": {
                "server_uri": {"uri": "http://127.0.0.1", "cluster": "authz", "timeout": "2s"},
                "authorization_response": {
                    "allowed_upstream_headers": {"patterns": [{"exact": "x-lf-verified"}]}
                },
            },
        },
    }


def cluster(name: str, port: int) -> dict:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {"address": "127.0.0.1", "port_value": port}
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }


def envoy_config(listen: int, admin: int, filters: list[dict], clusters: list[dict], route: dict,
                 extra_routes: list[dict] | None = None) -> dict:
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "bench",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters."
                                        "network.http_connection_manager.v3.HttpConnectionManager",
                                        "stat_prefix": "bench",
                                        "codec_type": "AUTO",
                                        "route_config": {
                                            "name": "local",
                                            "virtual_hosts": [
                                                {
                                                    "name": "all",
                                                    "domains": ["*"],
                                                    "routes": (extra_routes or [])
                                                    + [{"match": {"prefix": "/"}, **route}],
                                                }
                                            ],
                                        },
                                        "http_filters": filters
                                        + [
                                            {
                                                "name": "envoy.filters.http.router",
                                                "typed_config": {
                                                    "@type": "type.googleapis.com/envoy.extensions."
                                                    "filters.http.router.v3.Router"
                                                },
                                            }
                                        ],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": clusters,
        },
    }


class Proc:
    """A started process (Envoy or helper) with its CPU counters."""

    def __init__(self, name: str, argv: list[str], env: dict, log: Path):
        self.name = name
        self.log = log
        self.fh = open(log, "wb")
        self.p = subprocess.Popen(argv, stdout=self.fh, stderr=subprocess.STDOUT, env=env)

    def cpu_ticks(self) -> int:
        fields = Path(f"/proc/{self.p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.fh.close()


def wait_live(name: str, proc: Proc, admin: int, timeout_s: float, poll_s: float) -> None:
    """Until Envoy's admin /ready says LIVE; exits the bench if Envoy dies or times out."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.p.poll() is not None:
            raise SystemExit(f"{name}: Envoy exited; see {proc.log}\n" + proc.log.read_text()[-3000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=5) as r:
                if r.read().strip() == b"LIVE":
                    return
        except OSError:
            pass
        time.sleep(poll_s)
    raise SystemExit(f"{name}: Envoy not ready after {timeout_s} s; see {proc.log}")


class EnvoyUnderTest:
    def __init__(self, name: str, cfg: dict, admin: int, listen: int, env: dict, helper: Proc | None = None):
        self.name, self.admin, self.listen, self.helper = name, admin, listen, helper
        path = OUT / f"{name}.json"
        path.write_text(json.dumps(cfg, indent=1))
        argv = [
            ENVOY, "-c", str(path), "--concurrency", "1", "--use-dynamic-base-id",
            "--log-level", "warn", "--disable-hot-restart",
        ]
        self.proc = Proc(name, argv, env, OUT / f"{name}.log")
        wait_live(name, self.proc, admin, timeout_s=30, poll_s=0.1)

    def counters(self) -> dict[str, int]:
        return admin_counters(self.admin)


# The request classes and the filter's de-dup counters (docs/reference.md), which prove what a
# de-dup row measured: every first copy recorded (and in the store), every duplicate answered.
COUNTER_FILTER = urllib.parse.quote(
    r"^(http\.bench\.downstream_rq_|wasmcustom\.lf_webhook_guard\.(duplicates_answered|dedup_))")
DEDUP_COUNTERS = ("duplicates_answered", "dedup_recorded", "dedup_store_recorded", "dedup_store_hits",
                  "dedup_store_errors", "dedup_store_timeouts")


def admin_counters(admin: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats?filter={COUNTER_FILTER}", timeout=5) as r:
        out = {}
        for line in r.read().decode().splitlines():
            k, _, v = line.partition(": ")
            if v.strip().isdigit():
                out[k.strip()] = int(v)
        return out


def dedup_check(name: str, n: int, d: dict[str, int], slack: int = 0) -> str | None:
    """What is wrong with a de-dup row's counter deltas `d` over `n` requests (None: all good).
    `slack`: requests in flight at a snapshot (wrk's connections) may be counted on either side."""
    if not name.startswith("dedup-"):
        return None
    g = lambda k: d.get(f"wasmcustom.lf_webhook_guard.{k}", 0)  # noqa: E731
    want = {k: 0 for k in DEDUP_COUNTERS}
    if name.endswith("-first"):
        want["dedup_recorded"] = n
        if name.startswith("dedup-fleet"):
            want["dedup_store_recorded"] = n
    else:
        want["duplicates_answered"] = n
    got = {k: g(k) for k in DEDUP_COUNTERS}
    ok = all(abs(got[k] - want[k]) <= (slack if want[k] else 0) for k in DEDUP_COUNTERS)
    return None if ok else f"{name}: de-dup counters over {n} requests: {got}, expected {want} (+-{slack})"


# --------------------------------------------------------------------------------------------
# Load generation
# --------------------------------------------------------------------------------------------

WRK_SCRIPT = """
wrk.method = "POST"
wrk.path = {path}
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{sig}
done = function(summary, latency, requests)
  io.write(string.format("BENCH %d %d %.3f %.3f %.3f %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.mean,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def lua_str(b: bytes | str) -> str:
    s = b.decode() if isinstance(b, bytes) else b
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


# Unique deliveries for the de-dup rows: the path is part of the de-dup identity (src/dedup.rs,
# `METHOD path?query`) and not of the md5 signature, so `/linksfield/sms/<run id>-<n>` (same
# route, prefix `/linksfield/`; a query string would be refused by the route) makes every request
# a first copy with one precomputed signature. The run id (wrk's last argument, see run_wrk) keeps
# repetitions apart.
WRK_UNIQUE = """
prefix = "x"
n = 0
init = function(args) prefix = args[#args] or "x" end
request = function()
  n = n + 1
  return wrk.format(nil, wrk.path .. "/" .. prefix .. "-" .. n)
end
"""


def wrk_script(name: str, path: str, body: bytes, sig: str | None, unique: bool = False) -> Path:
    p = OUT / f"wrk-{name}.lua"
    sig_line = f'wrk.headers["x-lf-md5"] = {lua_str(sig)}' if sig else ""
    p.write_text(WRK_SCRIPT.format(path=lua_str(path), body=lua_str(body), sig=sig_line)
                 + (WRK_UNIQUE if unique else ""))
    return p


def run_wrk(port: int, script: Path, seconds: float) -> dict:
    argv = [
        WRK, "-t1", f"-c{CONNS}", f"-d{max(1, round(seconds))}s", "--timeout", "2s", "-s", str(script),
        f"http://127.0.0.1:{port}", f"r{time.time_ns()}",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    m = re.search(r"^BENCH (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+) (\d+)$", out.stdout, re.M)
    if not m:
        raise SystemExit(f"wrk failed: {out.stdout}\n{out.stderr}")
    n, dur_us, p50, p99, mean, errors = m.groups()
    return {
        "requests": int(n),
        "rps": int(n) / (int(dur_us) / 1e6),
        "p50_us": float(p50),
        "p99_us": float(p99),
        "errors": int(errors),
    }


def settle(e: EnvoyUnderTest) -> None:
    """Wait (at most 5 s) until the Envoy has no request in flight, so that the counter deltas
    of one run hold no straggler of the previous run on the same Envoy (guard, unprotected and
    forged share one)."""
    deadline = time.time() + 5
    while time.time() < deadline and e.counters().get("http.bench.downstream_rq_active", 0):
        time.sleep(0.05)


def measure(e: EnvoyUnderTest, script: Path, seconds: float) -> dict:
    settle(e)
    c0, t0 = e.counters(), e.proc.cpu_ticks()
    h0 = e.helper.cpu_ticks() if e.helper else 0
    w = run_wrk(e.listen, script, seconds)
    settle(e)
    t1 = e.proc.cpu_ticks()
    h1 = e.helper.cpu_ticks() if e.helper else 0
    c1 = e.counters()
    d = {k: c1.get(k, 0) - c0.get(k, 0) for k in c1}
    n = d.get("http.bench.downstream_rq_completed", 0)
    us = 1e6 / CLK_TCK
    return {
        **w,
        "dedup": {k: d.get(f"wasmcustom.lf_webhook_guard.{k}", 0) for k in DEDUP_COUNTERS},
        "completed": n,
        "rq_2xx": d.get("http.bench.downstream_rq_2xx", 0),
        "rq_4xx": d.get("http.bench.downstream_rq_4xx", 0),
        "rq_5xx": d.get("http.bench.downstream_rq_5xx", 0),
        "envoy_us_per_rq": (t1 - t0) * us / n if n else float("nan"),
        "total_us_per_rq": ((t1 - t0) + (h1 - h0)) * us / n if n else float("nan"),
    }


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

CONFIGS = [
    # name, label, expect (2xx or 4xx), path kind, signed
    ("passthrough", "passthrough (no filter)", "2xx", "protected", True),
    ("floor-continue", "no-op Wasm, continue at once", "2xx", "protected", True),
    ("floor-hold", "floor: no-op Wasm, hold to end of body", "2xx", "protected", True),
    ("guard", "lf-webhook-guard, md5 route", "2xx", "protected", True),
    ("guard-unprotected", "lf-webhook-guard, unprotected route", "2xx", "unprotected", True),
    ("guard-forged", "lf-webhook-guard, forged (401)", "4xx", "protected", "forged"),
    ("lua", "peer 1: Envoy Lua md5 check", "2xx", "protected", True),
    ("ext-authz", "peer 2: ext_authz + Rust service", "2xx", "protected", True),
    # Fleet de-dup (issue 16), 1 KiB only (FLEET_SIZES): the shipped dedup table alone, and with
    # dedup.store.etcd against a three-member etcd cluster on loopback started for the run.
    # "first": every request a new delivery (lookup + record); "dup": one delivery resent
    # (answered at the edge, 200 x-lf-duplicate). Reported in bench/results/fleet.md.
    ("dedup-local-first", "guard md5 + local de-dup, first copies", "2xx", "protected", "unique"),
    ("dedup-local-dup", "guard md5 + local de-dup, duplicates", "2xx", "protected", True),
    ("dedup-fleet-first", "guard md5 + fleet store (etcd), first copies", "2xx", "protected", "unique"),
    ("dedup-fleet-dup", "guard md5 + fleet store (etcd), duplicates", "2xx", "protected", True),
]
FLEET_SIZES = [1024]


def sizes_of(name: str) -> list[int]:
    return FLEET_SIZES if name.startswith("dedup-") else SIZES


# --------------------------------------------------------------------------------------------
# Fleet de-dup: the shipped configuration (envoy/envoy-fleet.yaml) and its etcd cluster
# --------------------------------------------------------------------------------------------

FLEET_YAML = REPO / "envoy" / "envoy-fleet.yaml"


def shipped_plugin_config(yaml_path: Path) -> str:
    """The plugin JSON of a shipped Envoy YAML (envoy/envoy.yaml, envoy/envoy-fleet.yaml...)."""
    import yaml

    cfg = yaml.safe_load(yaml_path.read_text())
    for listener in cfg["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for flt in chain["filters"]:
                for hf in flt["typed_config"].get("http_filters", []):
                    if hf["name"] == "lf_webhook_guard":
                        return hf["typed_config"]["config"]["configuration"]["value"]
    raise SystemExit(f"no lf_webhook_guard filter in {yaml_path}")


def fleet_plugin_config(store: bool, timeout_ms: int | None = None) -> str:
    """envoy/envoy-fleet.yaml's plugin JSON; without `store`, the same dedup table alone."""
    cfg = json.loads(shipped_plugin_config(FLEET_YAML))
    if not store:
        del cfg["dedup"]["store"]
    elif timeout_ms is not None:
        cfg["dedup"]["store"]["etcd"]["timeout_ms"] = timeout_ms
    return json.dumps(cfg)


def fleet_filter(store: bool, timeout_ms: int | None = None) -> dict:
    """The guard with envoy/envoy-fleet.yaml's plugin JSON (its keys read three env variables)."""
    f = wasm_filter("lf_webhook_guard", GUARD_WASM, fleet_plugin_config(store, timeout_ms), True)
    f["typed_config"]["config"]["vm_config"]["environment_variables"]["host_env_keys"] = [
        "LF_WEBHOOK_SECRET", "LF_CUBE_KEY_ID", "LF_CUBE_KEY"]
    return f


def fleet_etcd_cluster(client_ports: list[int]) -> dict:
    """envoy/envoy-fleet.yaml's `etcd` cluster (health check, outlier detection) on these ports."""
    import yaml

    cfg = yaml.safe_load(FLEET_YAML.read_text())
    for c in cfg["static_resources"]["clusters"]:
        if c["name"] == "etcd":
            eps = c["load_assignment"]["endpoints"][0]["lb_endpoints"]
            if len(eps) != len(client_ports):
                raise SystemExit(f"{FLEET_YAML}: etcd cluster has {len(eps)} members")
            for ep, port in zip(eps, client_ports):
                ep["endpoint"]["address"]["socket_address"]["port_value"] = port
            return c
    raise SystemExit(f"no etcd cluster in {FLEET_YAML}")


def start_etcd():
    """A three-member etcd cluster on free loopback ports (envoy/etcd-cluster.sh via
    tests/e2e/lib/etcdutil.py); missing etcd fails with the install hint (`make etcd`)."""
    sys.path.insert(0, str(REPO / "tests" / "e2e" / "lib"))
    import etcdutil

    try:
        return etcdutil.EtcdCluster().start()
    except Exception as e:  # harness.HarnessError: the message says how to install etcd
        raise SystemExit(f"fleet rows: {e}")


def write_fleet(section: str, res: dict, info: dict, method: dict) -> None:
    """Merge one section ("ir" from instructions.py, "latency" from run.py) into
    bench/results/fleet.json and rewrite bench/results/fleet.md from both."""
    path = RESULTS / "fleet.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[section] = {"machine": info, "method": method, "results": res}
    path.write_text(json.dumps(data, indent=1))
    ir = data.get("ir", {}).get("results", {})
    lat = data.get("latency", {}).get("results", {})
    lines = [
        "# Fleet de-duplication: cost per request (1 KiB body)",
        "",
        "Guard md5 route with envoy/envoy-fleet.yaml's plugin JSON: `local` = its dedup table "
        "alone (no `store`), `fleet` = with `dedup.store.etcd` against a three-member etcd 3.4 "
        "cluster on loopback (envoy/etcd-cluster.sh, started for the run, stopped after), the "
        "`etcd` cluster of envoy/envoy-fleet.yaml. First copies: every request a new delivery "
        "(another path under the route, `/linksfield/sms/<run>-<n>`: the path is part of the de-dup identity, not of the signature), "
        "so the fleet store does a range lookup before forwarding and a txn record after the 2xx. "
        "Duplicates: one delivery resent, answered at the edge (200 `x-lf-duplicate`) from the "
        "replica's own table.",
        "",
        "Instructions: front Envoy only (`make bench-ir`, callgrind, see instructions.md for the "
        "method; fleet rows use `timeout_ms` 5000 under valgrind); **etcd's own CPU is not "
        "counted** (three native processes beside Envoy). Latency: wrk, client side (`make "
        "bench-envoy`, see results.md for the method), medians of the repetitions; the shipped "
        "`timeout_ms` 250 and `on_error: reject` (a failed lookup would fail the run with a 503). "
        "wrk is a closed loop of 4 connections, so these are latencies at saturation: a first copy "
        "with the store queues behind etcd's own throughput on the same 2 shared cores (3 members "
        "fsyncing each txn); docs/fleet.md has the unloaded, sequential latencies. Every row "
        "checks the filter's counters: each first copy recorded (fleet: also in etcd, no store "
        "error or timeout), each duplicate answered at the edge.",
        "",
        "| delivery | local Ir/rq | fleet Ir/rq | added Ir/rq | local p50 / p99 us | "
        "fleet p50 / p99 us | added p50 / p99 us |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, label in (("first", "first copy (lookup + record)"), ("dup", "duplicate (at the edge)")):
        loc_ir = ir.get(f"dedup-local-{kind}/1024", {}).get("ir")
        fl_ir = ir.get(f"dedup-fleet-{kind}/1024", {}).get("ir")
        loc = lat.get(f"dedup-local-{kind}/1024", {})
        fl = lat.get(f"dedup-fleet-{kind}/1024", {})
        f = lambda v: f"{v:,.0f}" if v is not None else "not measured"  # noqa: E731
        pp = lambda m: f"{m['p50_us']:,.0f} / {m['p99_us']:,.0f}" if m else "not measured"  # noqa: E731
        added_ir = f"{fl_ir - loc_ir:+,.0f}" if loc_ir and fl_ir else "-"
        added_lat = (f"{fl['p50_us'] - loc['p50_us']:+,.0f} / {fl['p99_us'] - loc['p99_us']:+,.0f}"
                     if loc and fl else "-")
        lines.append(f"| {label} | {f(loc_ir)} | {f(fl_ir)} | {added_ir} | {pp(loc)} | {pp(fl)} | {added_lat} |")
    if lat:
        lines += ["", "Throughput and CPU (wrk run, Envoy CPU us/rq excludes etcd):", "",
                  "| row | rq/s | Envoy CPU us/rq |", "|---|---:|---:|"]
        for k, m in lat.items():
            lines.append(f"| {k} | {m['rps']:,.0f} | {m['envoy_us_per_rq']:.1f} |")
    for sec in ("ir", "latency"):
        if sec in data:
            m = data[sec]["machine"]
            lines += ["", f"{sec}: Envoy {m.get('envoy', '?')}, load average at start "
                      f"{' '.join(m.get('loadavg_at_start', []))}; method {json.dumps(data[sec]['method'])}"]
    lines.append("")
    (RESULTS / "fleet.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"\nwrote {RESULTS}/fleet.md, fleet.json")


def machine() -> dict:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    envoy_version = subprocess.run([ENVOY, "--version"], capture_output=True, text=True).stdout.strip()
    wrk_version = subprocess.run([WRK, "-v"], capture_output=True, text=True).stdout.splitlines()[:1]
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "envoy": envoy_version.split("version:")[-1].strip(),
        "wrk": (wrk_version or ["?"])[0].strip(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for f in (ENVOY, GUARD_WASM, FLOOR_WASM, AUTHZ_BIN, LUA_SCRIPT):
        if not Path(f).exists():
            raise SystemExit(f"missing {f}: run `make bench`")
    configs = [c for c in CONFIGS if not ONLY or c[0] in ONLY]
    # The Cube key of envoy/envoy-fleet.yaml's plugin JSON (unused by the md5 rows).
    env = dict(os.environ, LF_WEBHOOK_SECRET=SECRET, LF_CUBE_KEY_ID="bench-cube", LF_CUBE_KEY="bench-cube-key")
    info = machine()
    print(f"machine: {info}", flush=True)

    started: list[Proc] = []
    envoys: dict[str, EnvoyUnderTest] = {}
    etcd = None
    try:
        # The upstream: answers every request itself.
        up_port, up_admin = free_port(), free_port()
        up_cfg = envoy_config(up_port, up_admin, [], [], {"direct_response": {"status": 200, "body": {"inline_string": "ok"}}})
        upstream = EnvoyUnderTest("upstream", up_cfg, up_admin, up_port, env)
        started.append(upstream.proc)
        to_upstream = {"route": {"cluster": "upstream", "timeout": "5s"}}
        up_cluster = cluster("upstream", up_port)
        wanted = {c[0] for c in configs}
        for name in ["passthrough", "floor-continue", "floor-hold", "guard", "lua", "ext-authz",
                     # One Envoy per de-dup row: first copies evict entries of the table.
                     "dedup-local-first", "dedup-local-dup", "dedup-fleet-first", "dedup-fleet-dup"]:
            if not any(w == name or w.startswith(name + "-") for w in wanted):
                continue
            listen, admin = free_port(), free_port()
            clusters, helper = [up_cluster], None
            if name == "passthrough":
                filters = []
            elif name == "floor-continue":
                filters = [wasm_filter("floor", FLOOR_WASM, "continue", False)]
            elif name == "floor-hold":
                filters = [wasm_filter("floor", FLOOR_WASM, "hold", True)]
            elif name == "guard":
                filters = [wasm_filter("lf_webhook_guard", GUARD_WASM, PLUGIN_CONFIG, True)]
            elif name == "lua":
                filters = [lua_filter()]
            elif name.startswith("dedup-local"):
                filters = [fleet_filter(False)]
            elif name.startswith("dedup-fleet"):
                etcd = etcd or start_etcd()  # one cluster for both fleet rows
                clusters = [up_cluster, fleet_etcd_cluster(etcd.client_ports)]
                filters = [fleet_filter(True)]
            else:
                authz_port = free_port()
                cfg_path = OUT / "authz-config.json"
                cfg_path.write_text(PLUGIN_CONFIG)
                helper = Proc("authz", [str(AUTHZ_BIN), f"127.0.0.1:{authz_port}", str(cfg_path)], env, OUT / "authz.log")
                started.append(helper)
                clusters = [up_cluster, cluster("authz", authz_port)]
                filters = [ext_authz_filter()]
            e = EnvoyUnderTest(name, envoy_config(listen, admin, filters, clusters, to_upstream), admin, listen, env, helper)
            started.append(e.proc)
            for c in configs:
                if c[0] == name or c[0].startswith(name + "-"):
                    envoys[c[0]] = e

        bodies = {s: make_body(s) for s in SIZES}
        scripts = {}
        for name, _, _, kind, signed in configs:
            for s in sizes_of(name):
                body = bodies[s] if s in bodies else make_body(s)
                sig = sign_md5(body, SECRET)
                if signed == "forged":
                    sig = sign_md5(body, "not-the-secret")
                path = PROTECTED if kind == "protected" else UNPROTECTED
                scripts[(name, s)] = wrk_script(f"{name}-{s}", path, body, sig, signed == "unique")

        # Warm-up (JIT, connection pools), and a correctness check of every configuration.
        for name, _, expect, _, _ in configs:
            for s in sizes_of(name):
                r = measure(envoys[name], scripts[(name, s)], 1)
                bad = r["completed"] - r[f"rq_{expect}"]
                if r["completed"] == 0 or bad or r["errors"]:
                    raise SystemExit(f"{name} {s} B: expected all {expect}, got {r}")
                # A duplicate row's warm-up records its delivery (concurrent first copies may
                # all be recorded), so only its measured runs are checked.
                bad_dedup = not name.endswith("-dup") and dedup_check(name, r["completed"], {f"wasmcustom.lf_webhook_guard.{k}": v
                                                               for k, v in r["dedup"].items()}, CONNS)
                if bad_dedup:
                    raise SystemExit(bad_dedup)
        print(f"all configurations answer as expected; {REPS} reps x {len(configs)} configs x {SECONDS:g} s per size", flush=True)

        runs: dict[tuple[str, int], list[dict]] = {}
        all_sizes = sorted({s for c in configs for s in sizes_of(c[0])})
        for rep in range(REPS):
            for s in all_sizes:
                # Rotate the order each repetition so no configuration always runs first.
                order = configs[rep % len(configs):] + configs[: rep % len(configs)]
                for name, _, expect, _, _ in order:
                    if s not in sizes_of(name):
                        continue
                    r = measure(envoys[name], scripts[(name, s)], SECONDS)
                    bad = r["completed"] - r[f"rq_{expect}"]
                    if bad or r["errors"]:
                        raise SystemExit(f"{name} {s} B: expected all {expect}, got {r}")
                    bad_dedup = dedup_check(name, r["completed"], {f"wasmcustom.lf_webhook_guard.{k}": v
                                                                   for k, v in r["dedup"].items()}, CONNS)
                    if bad_dedup:
                        raise SystemExit(bad_dedup)
                    runs.setdefault((name, s), []).append(r)
                    print(
                        f"rep {rep + 1} {s:>6} B {name:<18} envoy {r['envoy_us_per_rq']:7.1f} us/rq  "
                        f"total {r['total_us_per_rq']:7.1f} us/rq  {r['rps']:8.0f} rq/s  "
                        f"p50 {r['p50_us']:7.0f} us  p99 {r['p99_us']:7.0f} us",
                        flush=True,
                    )
        # Resident memory of each Envoy under test after the runs (one worker): issue 15's
        # target is guard minus floor <= 5 MB.
        rss = {}
        for name, e in envoys.items():
            for line in Path(f"/proc/{e.proc.p.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss[name] = int(line.split()[1]) * 1024
        info["rss_bytes"] = rss
    finally:
        for p in reversed(started):
            p.stop()
        if etcd is not None:
            etcd.close()

    med = {}
    for (name, s), rs in runs.items():
        med[(name, s)] = {
            k: statistics.median(r[k] for r in rs)
            for k in ("envoy_us_per_rq", "total_us_per_rq", "rps", "p50_us", "p99_us")
        }
        med[(name, s)]["requests"] = sum(r["completed"] for r in rs)
    fleet = [c for c in configs if c[0].startswith("dedup-")]
    if fleet:
        write_fleet("latency", {f"{n}/{s}": m for (n, s), m in med.items() if n.startswith("dedup-")}, info,
                    {"seconds": SECONDS, "reps": REPS, "connections": CONNS, "sizes": FLEET_SIZES})
    main_configs = [c for c in configs if c not in fleet]
    if main_configs:  # results.md holds the other rows only (a fleet-only run leaves it alone)
        write_results(main_configs, {k: v for k, v in med.items() if not k[0].startswith("dedup-")},
                      {k: v for k, v in runs.items() if not k[0].startswith("dedup-")}, info)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def targets(med: dict, sizes: list[int]) -> list[tuple[str, bool, str]]:
    out = []
    g = lambda n, s, k="envoy_us_per_rq": med.get((n, s), {}).get(k)  # noqa: E731
    if all(g(n, 1024) is not None for n in ("guard", "floor-hold", "passthrough")):
        above = g("guard", 1024) - g("floor-hold", 1024)
        pct = 100 * above / g("passthrough", 1024)
        out.append((
            "verification above the floor <= 10% of passthrough (Envoy CPU/rq, 1 KiB)",
            pct <= 10,
            f"{above:.1f} us above floor = {pct:.1f}% of passthrough {g('passthrough', 1024):.1f} us",
        ))
    for s in sizes:
        if g("guard-unprotected", s) is not None and g("floor-continue", s) is not None:
            a, b = g("guard-unprotected", s), g("floor-continue", s)
            rel = 100 * (a - b) / b
            out.append((
                f"unprotected route ~ no-op continue filter ({s} B)",
                abs(rel) <= 5,
                f"{a:.1f} vs {b:.1f} us/rq ({rel:+.1f}%; 'indistinguishable' = within 5%)",
            ))
    rss = INFO_RSS
    if "guard" in rss and "floor-hold" in rss:
        d = rss["guard"] - rss["floor-hold"]
        out.append(("front-Envoy RSS, guard minus floor <= 5 MB (one worker)", d <= 5 * 1024 * 1024,
                    f"{rss['guard'] / 2**20:.1f} MiB - {rss['floor-hold'] / 2**20:.1f} MiB = {d / 2**20:.1f} MiB "
                    f"(passthrough {rss.get('passthrough', 0) / 2**20:.1f} MiB)"))
    for peer in ("lua", "ext-authz"):
        for s in sizes:
            if g("guard", s) is None or g(peer, s) is None:
                continue
            checks = [
                ("Envoy CPU", "envoy_us_per_rq"),
                ("total CPU", "total_us_per_rq"),
                ("p99", "p99_us"),
            ]
            ok = all(g("guard", s, k) < g(peer, s, k) for _, k in checks)
            detail = ", ".join(f"{lbl} {g('guard', s, k):.0f} vs {g(peer, s, k):.0f}" for lbl, k in checks)
            out.append((f"ahead of {peer} ({s} B)", ok, detail))
    return out


def svg_open(width: int, height: int, title: str, sizes: list[int], colors: list[str]) -> list[str]:
    """The opening of a grouped-bar chart (bench/results/*.svg): canvas, title, one legend entry
    per body size."""
    o = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="20" font-size="15" font-weight="bold">{title}</text>',
    ]
    for i, s in enumerate(sizes):
        o.append(f'<rect x="{10 + i * 110}" y="30" width="12" height="12" fill="{colors[i % 3]}"/>'
                 f'<text x="{26 + i * 110}" y="40">{s} B body</text>')
    return o


def answering_upstream(name: str, env: dict) -> "EnvoyUnderTest":
    """The upstream of the instruction and RSS runs: a native Envoy answering 200 itself once it
    has the whole body. The buffer filter makes it wait for the body: a direct response sent
    before the body is complete makes the front Envoy close the client's connection (HTTP/1.1
    cannot continue past an unfinished request)."""
    port, admin = free_port(), free_port()
    buffer = {"name": "envoy.filters.http.buffer", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
        "max_request_bytes": 1048576}}
    cfg = envoy_config(port, admin, [buffer], [],
                       {"direct_response": {"status": 200, "body": {"inline_string": "ok"}}})
    return EnvoyUnderTest(name, cfg, admin, port, env)


def svg_chart(configs: list, med: dict, sizes: list[int]) -> str:
    """Grouped horizontal bars: Envoy CPU us/request (total CPU as a lighter extension)."""
    names = [c[0] for c in configs]
    colors = ["#4e79a7", "#f28e2b", "#59a14f"]
    row_h, bar_h, left, width = 16, 13, 300, 560
    group_h = row_h * len(sizes) + 10
    height = 60 + group_h * len(names) + 30
    vmax = max(
        (med[(n, s)]["total_us_per_rq"] for n in names for s in sizes if (n, s) in med), default=1
    )
    scale = width / (vmax * 1.05)
    o = svg_open(left + width + 120, height,
                 "CPU per request (us), median; solid: Envoy, light: + helper service", sizes, colors)
    y = 60
    for c in configs:
        n, label = c[0], c[1]
        o.append(f'<text x="{left - 8}" y="{y + group_h / 2}" text-anchor="end">{label}</text>')
        for i, s in enumerate(sizes):
            m = med.get((n, s))
            if not m:
                continue
            yy = y + i * row_h
            ew, tw = m["envoy_us_per_rq"] * scale, m["total_us_per_rq"] * scale
            o.append(f'<rect x="{left}" y="{yy}" width="{tw:.1f}" height="{bar_h}" fill="{colors[i % 3]}" opacity="0.35"/>')
            o.append(f'<rect x="{left}" y="{yy}" width="{ew:.1f}" height="{bar_h}" fill="{colors[i % 3]}"/>')
            val = f"{m['envoy_us_per_rq']:.0f}"
            if m["total_us_per_rq"] > m["envoy_us_per_rq"] * 1.01:
                val += f" / {m['total_us_per_rq']:.0f}"
            o.append(f'<text x="{left + tw + 4:.1f}" y="{yy + 11}">{val}</text>')
        y += group_h
    o.append("</svg>")
    return "\n".join(o)


INFO_RSS: dict[str, int] = {}


def write_results(configs: list, med: dict, runs: dict, info: dict) -> None:
    INFO_RSS.update(info.get("rss_bytes", {}))
    sizes = SIZES
    lines = [
        "# lf-webhook-guard: side-by-side Envoy benchmark",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), Linux {info['kernel']}, shared with other "
        f"work (load average at start {' '.join(info['loadavg_at_start'])}). Envoy {info['envoy']}, "
        f"`--concurrency 1`; {info['wrk']}, 1 thread, {CONNS} connections, closed loop.",
        f"Method: {REPS} interleaved repetitions x {SECONDS:g} s per configuration and size; medians. "
        "CPU = utime+stime of the Envoy under test from /proc/<pid>/stat over its "
        "`downstream_rq_completed`; total adds the ext_authz service process. The upstream is a "
        "second Envoy answering with `direct_response` (same for all; not counted). Every run "
        "checks that all requests got the expected class (2xx, or 4xx for forged).",
        "",
        "| configuration | body | Envoy CPU us/rq | total CPU us/rq | rq/s | p50 us | p99 us |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in sizes:
        for c in configs:
            m = med.get((c[0], s))
            if not m:
                continue
            lines.append(
                f"| {c[1]} | {s} | {m['envoy_us_per_rq']:.1f} | {m['total_us_per_rq']:.1f} | "
                f"{m['rps']:.0f} | {m['p50_us']:.0f} | {m['p99_us']:.0f} |"
            )
    lines += ["", "## Targets", "", "| target | met | measured |", "|---|---|---|"]
    for name, ok, detail in targets(med, sizes):
        lines.append(f"| {name} | {'yes' if ok else 'NO'} | {detail} |")
    lines += ["", "![CPU per request](envoy-cpu.svg)", ""]
    (RESULTS / "results.md").write_text("\n".join(lines))
    (RESULTS / "envoy-cpu.svg").write_text(svg_chart(configs, med, sizes))
    (RESULTS / "results.json").write_text(
        json.dumps(
            {
                "machine": info,
                "method": {"seconds": SECONDS, "reps": REPS, "connections": CONNS, "sizes": sizes},
                "median": {f"{n}/{s}": m for (n, s), m in med.items()},
                "runs": {f"{n}/{s}": rs for (n, s), rs in runs.items()},
            },
            indent=1,
        )
    )
    print("\n".join(lines))
    print(f"\nwrote {RESULTS}/results.md, results.json, envoy-cpu.svg")


if __name__ == "__main__":
    main()
