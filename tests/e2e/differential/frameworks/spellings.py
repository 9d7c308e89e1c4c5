"""Seeded generator of request-target spellings of the protected paths
(tests/e2e/differential/test_frameworks.py).

`spellings(seed)` returns, per protected route (md5: /linksfield/sms, cube: /cube/notify), at least
PER_CLASS byte-distinct request targets in each class of CLASSES (deterministic for a seed), plus
the canonical spelling itself (class `canonical`, the control). A target is raw bytes as written
on the request line; `Spelling.path` is what Envoy hands the filter as `:path` (the absolute-form
authority stripped). No target contains CR or LF.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

CANONICAL = {"md5": b"/linksfield/sms", "cube": b"/cube/notify"}
EXEMPT = [b"/health", b"/linksfield/health"]
# The authority of absolute-form targets: fixed (the shipped listener's port), so targets are
# byte-identical across runs whatever port the test listens on.
AUTHORITIES = [b"http://127.0.0.1:10000", b"http://lf-e2e.test", b"HTTP://127.0.0.1:10000",
               b"http://localhost", b"http://127.0.0.1", b"https://127.0.0.1:10000",
               b"http://LF-E2E.TEST:80"]
CLASSES = [
    "case", "semicolon", "dotdot_semicolon", "pct_upper", "pct_lower", "double_encoding",
    "dot_segments", "slashes", "suffix", "trailing", "nul", "unicode", "absolute_form",
    "exempt_based",
]
PER_CLASS = 75


@dataclass(frozen=True)
class Spelling:
    route: str  # "md5" or "cube"
    cls: str
    target: bytes

    @property
    def path(self) -> bytes:
        """The origin-form part (absolute-form: after scheme://authority)."""
        t = self.target
        if t[:1] != b"/" and b"://" in t:
            rest = t.split(b"://", 1)[1]
            i = rest.find(b"/")
            return rest[i:] if i >= 0 else b"/"
        return t


def _pct(c: int, upper: bool) -> bytes:
    return (b"%%%02X" if upper else b"%%%02x") % c


def _segs(route: str) -> list[bytes]:
    return CANONICAL[route].lstrip(b"/").split(b"/")


def _join(segs: list[bytes]) -> bytes:
    return b"/" + b"/".join(segs)


def _gen_case(rng, route):
    s = bytearray(CANONICAL[route])
    for i, c in enumerate(s):
        if 97 <= c <= 122 and rng.random() < 0.5:
            s[i] = c - 32
    return bytes(s)


PARAMS = [b";", b";jsessionid=x", b";jsessionid=ABCDEF0123456789", b";a=b", b";x", b";JSESSIONID=x",
          b";v=1.0", b";,", b";=", b";%2f", b";jsessionid=", b";a;b", b";.", b";..", b";%00"]


def _gen_semicolon(rng, route):
    segs = _segs(route)
    out = [s + (rng.choice(PARAMS) if rng.random() < 0.5 else b"") for s in segs]
    if rng.random() < 0.2:
        return b"/" + rng.choice(PARAMS) + b"/" + b"/".join(out)
    if out == segs:
        out[rng.randrange(len(out))] += rng.choice(PARAMS)
    return _join(out)


JUNK = [b"app2", b"x", b"static", b"a", b"api", b"foo;bar", b"public", b"v1", b"linksfield", b"cube",
        b"sms", b"notify", b"index.html", b"%2e"]


def _dotdot_semi(rng) -> bytes:
    return rng.choice([b"..;", b"..;", b"..;jsessionid=x", b"..;x=1", b"%2e%2e;", b".%2e;", b"..;/."])


def _gen_dotdot_semicolon(rng, route):
    segs = _segs(route)
    form = rng.randrange(4)
    if form == 0:  # /app2/..;/linksfield/sms
        return b"/" + rng.choice(JUNK) + b"/" + _dotdot_semi(rng) + _join(segs)
    if form == 1:  # /linksfield/x/..;/sms
        return _join([segs[0], rng.choice(JUNK), _dotdot_semi(rng), *segs[1:]])
    if form == 2:  # /a/b/..;/..;/linksfield/sms
        return (b"/" + rng.choice(JUNK) + b"/" + rng.choice(JUNK) + b"/" + _dotdot_semi(rng) + b"/"
                + _dotdot_semi(rng) + _join(segs))
    return b"/" + _dotdot_semi(rng) + _join(segs)  # /..;/linksfield/sms


def _gen_pct(rng, route, upper):
    s = CANONICAL[route]
    out = b"/"
    hit = False
    for c in s[1:]:
        if rng.random() < 0.3:
            out += _pct(c, upper)
            hit = True
        else:
            out += bytes([c])
    if not hit:
        i = rng.randrange(1, len(s))
        out = s[:i] + _pct(s[i], upper) + s[i + 1:]
    return out


def _gen_pct_upper(rng, route):
    return _gen_pct(rng, route, True)


def _gen_pct_lower(rng, route):
    return _gen_pct(rng, route, False)


def _gen_double_encoding(rng, route):
    s = CANONICAL[route]
    picks = sorted(rng.sample(range(1, len(s)), rng.randint(1, 3)))
    out = bytearray()
    for i, c in enumerate(s):
        if i in picks:
            enc = _pct(c, rng.random() < 0.5)  # %6C
            for _ in range(rng.randint(1, 2)):  # %256C, %25256C
                enc = b"%25" + enc[1:]
            out += enc
        else:
            out.append(c)
    return bytes(out)


DOT1 = [b".", b"%2e", b"%2E"]
DOT2 = [b"..", b".%2e", b"%2e.", b"%2e%2e", b"%2E%2E", b"%2e%2E", b".%2E"]


def _gen_dot_segments(rng, route):
    segs = list(_segs(route))
    for _ in range(rng.randint(1, 2)):
        pos = rng.randrange(len(segs) + 1)
        if rng.random() < 0.5:
            segs[pos:pos] = [rng.choice(DOT1)]
        else:
            segs[pos:pos] = [rng.choice(JUNK), rng.choice(DOT2)]
    return _join(segs)


SEPS = [b"/", b"//", b"///", b"\\", b"/\\", b"\\/", b"%5C", b"%5c", b"/%5C", b"%2F", b"%2f", b"/%2F",
        b"////", b"\\\\"]


def _gen_slashes(rng, route):
    segs = _segs(route)
    lead = rng.choice(SEPS[:8] + [b"/"] * 4)
    mid = rng.choice(SEPS)
    tail = rng.choice([b"", b"", b"/", b"//", b"\\"])
    t = lead + segs[0] + mid + segs[1] + tail
    if t == CANONICAL[route]:
        t = b"/" + CANONICAL[route]
    return t


SUFFIXES = [b".json", b".html", b".htm", b".php", b".xml", b".txt", b".do", b".jsp", b".action",
            b".aspx", b".css", b".js", b".gz", b".bak", b".old", b".1", b".JSON", b".Json", b"~",
            b".json/", b".", b".x", b".png", b".ico", b".map"]


def _gen_suffix(rng, route):
    segs = list(_segs(route))
    where = rng.randrange(3)
    if where in (0, 2):
        segs[-1] += rng.choice(SUFFIXES)
    if where in (1, 2):
        segs[0] += rng.choice(SUFFIXES)
    return _join(segs)


TRAIL = [b"/", b".", b" ", b"%20", b"%09", b"%0a", b"%0d", b"%0b", b"%0c", b"%a0", b"%A0", b"%c2%a0",
         b"%C2%A0", b"+", b"%2b", b"?", b"%3f", b"%3F", b"#", b"%23", b"*", b";", b"..", b"/.",
         b"/..", b"%2e", b"%2F", b"%7f", b"%ff"]


def _gen_trailing(rng, route):
    segs = list(_segs(route))
    tok = b"".join(rng.choice(TRAIL) for _ in range(rng.randint(1, 2)))
    if rng.random() < 0.25:
        segs[0] += tok
        t = _join(segs)
    else:
        t = _join(segs) + tok
    if t.endswith(b" ") or b" /" in t:  # a raw space ends the target: keep it only at the end
        t = _join(_segs(route)) + tok.replace(b" ", b"") + b" "
    return t


NULS = [b"%00", b"%2500", b"%00.json", b"%00/", b"%00%00", b"%00.html", b"%u0000"]


def _gen_nul(rng, route):
    s = CANONICAL[route]
    where = rng.randrange(3)
    tok = rng.choice(NULS)
    if where == 0:
        return s + tok
    if where == 1:
        segs = list(_segs(route))
        segs[0] += tok
        return _join(segs)
    i = rng.randrange(2, len(s))
    return s[:i] + tok + s[i:]


FOLDS = {ord("s"): ["\u017f"], ord("k"): ["\u212a"], ord("i"): ["\u0131", "\u0130"],
         ord("K"): ["\u212a"]}


def _lookalike(rng, c: int) -> tuple[bytes, bool]:
    """(bytes, valid_utf8) of a non-ASCII look-alike or an overlong encoding of byte c."""
    kind = rng.randrange(3)
    if kind == 0 and (65 <= c <= 90 or 97 <= c <= 122):
        return chr(0xFF21 + (c - 65) if c <= 90 else 0xFF41 + (c - 97)).encode(), True
    if kind == 1 and c in FOLDS:
        return rng.choice(FOLDS[c]).encode(), True
    if rng.random() < 0.5:  # overlong 2-byte
        return bytes([0xC0 | (c >> 6), 0x80 | (c & 0x3F)]), False
    return bytes([0xE0, 0x80 | (c >> 6), 0x80 | (c & 0x3F)]), False  # overlong 3-byte


def _gen_unicode(rng, route):
    s = CANONICAL[route]
    picks = rng.sample(range(1, len(s)), rng.randint(1, 2))
    out = bytearray()
    for i, c in enumerate(s):
        if i not in picks:
            out.append(c)
            continue
        raw, valid = _lookalike(rng, c)
        mode = rng.randrange(3) if valid else rng.randrange(2)
        if mode == 2:
            out += raw  # raw UTF-8 bytes on the request line
        else:
            out += b"".join(_pct(b, mode == 0) for b in raw)
    return bytes(out)


def _gen_absolute_form(rng, route):
    inner = CANONICAL[route]
    if rng.random() < 0.6:
        inner = GENERATORS[rng.choice(["case", "semicolon", "dotdot_semicolon", "pct_upper",
                                       "dot_segments", "suffix", "trailing", "nul"])](rng, route)
        if inner.endswith(b" "):
            inner = inner.rstrip(b" ")
    return rng.choice(AUTHORITIES) + inner


TRAVERSE = [b"/../", b"/..;/", b";/../", b"/%2e%2e/", b"/.%2e/", b"/%2E%2E/", b"/..%2f", b"%2f..%2f",
            b"/..\\", b"\\..\\", b"/./../", b";x=1/../", b"/..;jsessionid=x/", b"%2F..%2F", b"//../",
            b"/..%5c"]
# Not `?/../`: `/health?/../cube/notify` is the exempt path with a query, no spelling of a route.


def _gen_exempt_based(rng, route):
    canon = CANONICAL[route]
    form = rng.randrange(3)
    if route == "md5" and form == 1:  # /linksfield/health/../sms
        head = b"/linksfield/health"
        rest = b"sms"
    elif form == 2:  # /linksfield/health/../../linksfield/sms
        head = b"/linksfield/health"
        rest = rng.choice([b"..", b"%2e%2e", b"..;"]) + canon
    else:  # /health/../linksfield/sms
        head = b"/health"
        rest = canon[1:]
    head = rng.choice([head, head, head + b"/", head + b";", head + b";x=1", head.upper(),
                       head + b".json", head + b"%20"])
    return head + rng.choice(TRAVERSE) + rest


GENERATORS = {
    "case": _gen_case,
    "semicolon": _gen_semicolon,
    "dotdot_semicolon": _gen_dotdot_semicolon,
    "pct_upper": _gen_pct_upper,
    "pct_lower": _gen_pct_lower,
    "double_encoding": _gen_double_encoding,
    "dot_segments": _gen_dot_segments,
    "slashes": _gen_slashes,
    "suffix": _gen_suffix,
    "trailing": _gen_trailing,
    "nul": _gen_nul,
    "unicode": _gen_unicode,
    "absolute_form": _gen_absolute_form,
    "exempt_based": _gen_exempt_based,
}
# Spellings the suite's teeth need, always present (tomcat: ;jsessionid, express: case).
PINNED = [("md5", "semicolon", b"/linksfield;jsessionid=x/sms"), ("md5", "case", b"/LinksField/sms"),
          ("md5", "dotdot_semicolon", b"/app2/..;/linksfield/sms"),
          ("md5", "exempt_based", b"/health/../linksfield/sms"),
          ("md5", "exempt_based", b"/linksfield/health/../sms"),
          ("md5", "exempt_based", b"/health;/../linksfield/sms"),
          ("cube", "semicolon", b"/cube;jsessionid=x/notify"), ("cube", "case", b"/Cube/Notify"),
          ("cube", "exempt_based", b"/health/../cube/notify")]


def spellings(seed: int = 12, per_class: int = PER_CLASS) -> list[Spelling]:
    out: list[Spelling] = []
    for route in ("md5", "cube"):
        seen = {CANONICAL[route]}
        out.append(Spelling(route, "canonical", CANONICAL[route]))
        counts = dict.fromkeys(CLASSES, 0)
        for r, cls, t in PINNED:
            if r == route and t not in seen:
                seen.add(t)
                out.append(Spelling(route, cls, t))
                counts[cls] += 1
        for cls in CLASSES:
            rng = random.Random(f"{seed}/{route}/{cls}")
            for _ in range(50 * per_class):  # bounded: a small class space ends the loop
                if counts[cls] >= per_class:
                    break
                t = GENERATORS[cls](rng, route)
                if t in seen or b"\r" in t or b"\n" in t:
                    continue
                seen.add(t)
                out.append(Spelling(route, cls, t))
                counts[cls] += 1
    return out
