#!/usr/bin/env python3
"""Front-Envoy resident memory at idle and after traffic: passthrough, the floor filter and the
guard, each Envoy `--concurrency 1` (bench/results/README: why RSS follows the module's size).

    .venv/bin/python bench/rss.py [--wasm PATH]   # PATH: another build of the guard

Prints VmRSS (MiB) of each Envoy after start-up, after 500 sequential 1 KiB md5 requests and
after 32 connections x 50 more. Not part of `make bench` (the wrk run records RSS after load).
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e" / "lib"))

import instructions as ir  # noqa: E402  (configs, request headers)
import run  # noqa: E402


def rss_mib(e: run.EnvoyUnderTest) -> float:
    for line in Path(f"/proc/{e.proc.p.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no VmRSS for {e.name}")


def load(e: run.EnvoyUnderTest, conns: int, per_conn: int, body: bytes, headers: dict) -> None:
    errors: list[str] = []

    def one() -> None:
        c = http.client.HTTPConnection("127.0.0.1", e.listen, timeout=30)
        for _ in range(per_conn):
            c.request("POST", ir.PROTECTED, body=body, headers=headers)
            r = c.getresponse()
            r.read()
            if r.status != 200:
                errors.append(f"{e.name}: {r.status}")
        c.close()

    threads = [threading.Thread(target=one) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"unexpected answers: {errors[:5]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--wasm", type=Path, help="the guard module to measure (default: the shipped build)")
    args = ap.parse_args()
    if args.wasm:
        run.GUARD_WASM = args.wasm.resolve()
    run.OUT.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, LF_WEBHOOK_SECRET=run.SECRET, LF_CUBE_KEY_ID=ir.CUBE_KEY_ID, LF_CUBE_KEY=ir.CUBE_KEY)
    keys = ["LF_WEBHOOK_SECRET", "LF_CUBE_KEY_ID", "LF_CUBE_KEY"]
    started: list = []
    try:
        up = run.answering_upstream("rss-upstream", env)
        started.append(up.proc)
        route = {"route": {"cluster": "upstream", "timeout": "60s"}}
        variants = {
            "passthrough": [],
            "floor": [run.wasm_filter("floor", run.FLOOR_WASM, "hold", True)],
            "guard": [run.wasm_filter("lf_webhook_guard", run.GUARD_WASM, ir.DENY_CONFIG, True)],
        }
        envoys = {}
        for name, filters in variants.items():
            for f in filters:
                f["typed_config"]["config"]["vm_config"]["environment_variables"]["host_env_keys"] = keys
            listen, admin = run.free_port(), run.free_port()
            cfg = run.envoy_config(listen, admin, filters, [run.cluster("upstream", up.listen)], route)
            envoys[name] = run.EnvoyUnderTest(f"rss-{name}", cfg, admin, listen, env)
            started.append(envoys[name].proc)
        print(f"guard module: {run.GUARD_WASM} ({run.GUARD_WASM.stat().st_size:,} bytes)")
        time.sleep(3)
        body = run.make_body(1024)
        headers = ir.request_headers("md5", body)
        for label, conns, per in (("idle", 0, 0), ("after 500 sequential", 1, 500), ("after 32 x 50", 32, 50)):
            for e in envoys.values():
                if conns:
                    load(e, conns, per, body, headers)
            rss = {n: rss_mib(e) for n, e in envoys.items()}
            print(f"{label:>22}: " + "  ".join(f"{n} {v:6.1f} MiB" for n, v in rss.items())
                  + f"  | guard - floor {rss['guard'] - rss['floor']:5.1f} MiB")
    finally:
        for p in reversed(started):
            p.stop()


if __name__ == "__main__":
    main()
