#!/usr/bin/env python3
"""Size of a .wasm module by crate (issue 15 point 3). Usage: bench/wasm-size.py MODULE [--top N]

Reads the module's code section (the byte size of every function body) and its `name` custom
section (function names, as wasm-ld writes them: demangled Rust paths). The module must keep its
name section: build it with `CARGO_PROFILE_RELEASE_STRIP=none` (`make wasm-size` does, into its
own target dir) and pass the optimised copy through `wasm-opt` with `--debuginfo`, so sizes are
after the same optimiser as the shipped module. Prints a markdown table: bytes of code per crate,
the other sections, and with --top the N largest functions.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

SECTION_NAMES = {
    0: "custom", 1: "type", 2: "import", 3: "function", 4: "table", 5: "memory", 6: "global",
    7: "export", 8: "start", 9: "element", 10: "code", 11: "data", 12: "datacount",
}


def leb(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, i


def parse(buf: bytes):
    if buf[:4] != b"\0asm":
        raise SystemExit("not a wasm module")
    i = 8
    sections = []  # (id, name, start, end)
    while i < len(buf):
        sid = buf[i]
        size, j = leb(buf, i + 1)
        name = SECTION_NAMES.get(sid, f"id{sid}")
        if sid == 0:
            n, k = leb(buf, j)
            name = "custom:" + buf[k:k + n].decode(errors="replace")
        sections.append((sid, name, j, j + size, j - i + size))
        i = j + size
    return sections


def imported_functions(buf: bytes, start: int) -> int:
    count, i = leb(buf, start)
    funcs = 0
    for _ in range(count):
        for _ in range(2):  # module, field
            n, i = leb(buf, i)
            i += n
        kind = buf[i]
        i += 1
        if kind == 0:  # func: type index
            _, i = leb(buf, i)
            funcs += 1
        elif kind == 1:  # table: reftype + limits
            i += 1
            flags, i = leb(buf, i)
            _, i = leb(buf, i)
            if flags & 1:
                _, i = leb(buf, i)
        elif kind == 2:  # memory: limits
            flags, i = leb(buf, i)
            _, i = leb(buf, i)
            if flags & 1:
                _, i = leb(buf, i)
        elif kind == 3:  # global: valtype + mut
            i += 2
    return funcs


def function_names(buf: bytes, start: int, end: int) -> dict[int, str]:
    n, i = leb(buf, start)
    i += n  # "name"
    names: dict[int, str] = {}
    while i < end:
        sub = buf[i]
        size, i = leb(buf, i + 1)
        if sub == 1:
            count, k = leb(buf, i)
            for _ in range(count):
                idx, k = leb(buf, k)
                ln, k = leb(buf, k)
                names[idx] = buf[k:k + ln].decode(errors="replace")
                k += ln
        i += size
    return names


LEGACY_ESCAPES = {
    "$LT$": "<", "$GT$": ">", "$RF$": "&", "$BP$": "*", "$C$": ",", "$SP$": "@", "$u20$": " ",
    "$u27$": "'", "$u5b$": "[", "$u5d$": "]", "$u7b$": "{", "$u7d$": "}", "$u3b$": ";",
    "$u2b$": "+", "$u22$": '"', "$u7e$": "~", "$u21$": "!", "$u3d$": "=",
}


def demangle(sym: str) -> str:
    """Enough of Rust's legacy (`_ZN...E`) and v0 (`_R...`) manglings to name the crate."""
    if sym.startswith("_ZN"):
        i, parts = 3, []
        while i < len(sym) and sym[i].isdigit():
            m = re.match(r"\d+", sym[i:])
            n = int(m.group(0))
            i += m.end()
            part = sym[i:i + n]
            i += n
            if part.startswith("_$"):
                part = part[1:]
            for k, v in LEGACY_ESCAPES.items():
                part = part.replace(k, v)
            parts.append(part.replace("..", "::"))
        return "::".join(parts)
    if sym.startswith("_R"):
        # First crate root: C, optional disambiguator s<base62>_, identifier <len>[_]<bytes>.
        m = re.search(r"C(?:s[0-9A-Za-z]*_)?(\d+)_?", sym[2:])
        if m:
            start = 2 + m.end()
            return sym[start:start + int(m.group(1))] + "::(v0)"
    return sym


def crate_of(name: str) -> str:
    """The crate a demangled Rust path belongs to: the first path segment, or for
    `<T as Trait>::f` / `<T>::f` the crate of T."""
    s = demangle(name.strip())
    if s.startswith("<"):
        s = s[1:]
        s = s.lstrip("&*").removeprefix("mut ").removeprefix("const ").removeprefix("dyn ")
        s = s.lstrip("[(")
    if s.startswith("proxy_"):  # proxy-wasm's exported ABI entry points (plain C names)
        return "proxy_wasm"
    m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", s)
    if not m:
        return "(other)"
    head = m.group(0)
    if "::" not in s[: m.end() + 2] and not s[m.end():].startswith("::"):
        # C symbol (libc, compiler-rt) or a primitive type like `u8`.
        return "(C: libc/compiler-rt)" if head not in {"u8", "u16", "u32", "u64", "usize", "i8", "i32", "i64", "str", "bool", "char"} else "core"
    return head


def main() -> None:
    args = sys.argv[1:]
    top = 0
    if "--top" in args:
        k = args.index("--top")
        top = int(args[k + 1])
        del args[k:k + 2]
    if len(args) != 1:
        raise SystemExit(__doc__)
    path = Path(args[0])
    buf = path.read_bytes()
    sections = parse(buf)
    n_imports = 0
    code = names = None
    for sid, name, start, end, _ in sections:
        if sid == 2:
            n_imports = imported_functions(buf, start)
        elif sid == 10:
            code = (start, end)
        elif name == "custom:name":
            names = function_names(buf, start, end)
    if code is None:
        raise SystemExit("no code section")
    if not names:
        raise SystemExit(f"{path}: no name section (build with CARGO_PROFILE_RELEASE_STRIP=none, "
                         "keep it through wasm-opt with --debuginfo)")
    count, i = leb(buf, code[0])
    by_crate: dict[str, int] = defaultdict(int)
    funcs_by_crate: dict[str, int] = defaultdict(int)
    funcs = []
    for f in range(count):
        size, j = leb(buf, i)
        total = j - i + size
        fname = names.get(n_imports + f, f"func{n_imports + f}")
        crate = crate_of(fname)
        by_crate[crate] += total
        funcs_by_crate[crate] += 1
        funcs.append((total, fname))
        i = j + size
    code_total = sum(by_crate.values())
    print(f"`{path.name}`: {len(buf)} bytes in all ({len(buf) / 1024:.1f} KiB)\n")
    print("| section | bytes |\n|---|---:|")
    for sid, name, _, _, total in sections:
        print(f"| {name} | {total} |")
    print(f"\n| crate (code section) | functions | bytes | share of code |\n|---|---:|---:|---:|")
    for crate, b in sorted(by_crate.items(), key=lambda kv: -kv[1]):
        print(f"| {crate} | {funcs_by_crate[crate]} | {b} | {100 * b / code_total:.1f} % |")
    print(f"| **all** | {count} | {code_total} | 100 % |")
    if top:
        print(f"\n| largest functions | bytes |\n|---|---:|")
        for b, fname in sorted(funcs, reverse=True)[:top]:
            short = re.sub(r"::h[0-9a-f]{16}$", "", demangle(fname))
            print(f"| `{short[:110]}` | {b} |")


if __name__ == "__main__":
    main()
