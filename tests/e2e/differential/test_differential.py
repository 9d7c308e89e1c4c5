"""Parser differential: the filter must never accept a body that a mainstream parser
behind it reads as a different parameter set than the one the accepted signature covers.

A few hundred bodies (fixed seed) with tricky content are each signed under EVERY plausible
interpretation (lfsign.py's strict rules; Python `json.loads` defaults with last-wins
duplicates; first-wins; literal numbers; nested values as raw text; `parse_qsl` with
last-/first-wins, with `errors="replace"`, with `;` as a separator too (Python < 3.9.2), with
pairs holding `;` dropped (Go's url.ParseQuery), with `+` kept literal, with latin-1 text) and every distinct signature is sent through one Envoy (md5 JSON and form on
/linksfield/, JSON also on /cube/ with the Cube signatures of the same interpretations).

For every ACCEPTED request the backend's recorded body must be byte-for-byte the sent one, and
re-parsing it with the mainstream parser must re-create the accepted signature:
- JSON: Python `json.loads` with `object_pairs_hook` (only to SEE duplicates, which a plain dict
  silently collapses last-wins), `parse_int`/`parse_float=str` (the scheme signs a number's
  literal text) and `parse_constant` rejecting NaN/Infinity (not JSON). Besides, plain
  `json.loads(body)` (all defaults) must give the same keys and the same string/bool/null values.
  Cube: Python's view of the body (`json.loads`, all defaults) must equal Python's view of the
  signed canonical text.
- Form: `parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")` on the
  body decoded as strict UTF-8. keep_blank_values: `e=` is a signed (empty) value, dropping it
  would lose a signed parameter. strict_parsing=False: what web frameworks do (empty segments
  `a=1&&b=2` are skipped, as the filter does); in that mode Python is MORE lenient than the
  filter (`a` without `=`, `%zz` are accepted by Python, rejected by the filter), so it is the
  harder comparison. errors="strict": a replaced character would not be the signed text.
  The strict_parsing=True view is checked too: it may only fail on empty segments.
And the interpretation whose signature was accepted must have produced exactly that parameter
set (not just an equal canonical string), and every interpretation in MUST_AGREE that reads an
accepted body at all must read the same parameter set (else the body is ambiguous). Rejected requests must leave zero bytes upstream.
Counts (bodies, requests, accepted, rejected per category) are printed (`-s`).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from urllib.parse import parse_qsl, unquote

import lfsign
from e2eutil import CUBE_KEY, CUBE_KEY_ID, FORM, JSON, SECRET, envoy_fixture, now_ms
from harness import send_request

PATH = "/linksfield/diff"
CUBE_PATH = "/cube/diff"
SEED = 20261127
REPORT: dict = {}
NOTES: Counter = Counter()  # accepted inputs on which a non-default parser view differs (safe)


diff_guard = envoy_fixture()


# ==============================================================================================
# Body generation
# ==============================================================================================

JSON_KEYS = [
    '"a"', '"b"', '"A"', '"\\u0061"', '"\\u0041"', '"a\\/b"', '"a/b"', '"\xc3\xa9"',
    '"\\u00e9"', '"e\\u0301"', '"a=b"', '"a&b"', '""', '"\\u0000"', '"k\\u0000"',
    '"\\ud83d\\ude00"', '"\xf0\x9f\x98\x80"', '"\\ud800"', '"\\udc00x"', '"a b"', '"a\\tb"',
    '"partner_code"', '"sim_id"', '"\\"q"', '"\\\\"',
]
JSON_VALUES = [
    '"1"', '""', '"x"', '"\\u0041"', '"\\ud83d\\ude00"', '"\\ud800"', '"\\udfff\\ud800"',
    '"a\\/b"', '"caf\\u00e9"', '"caf\xc3\xa9"', '"a&b=c"', '"\\r\\n"', '"\\u0000"', '"x\\u001fy"',
    '"\xef\xbb\xbf"', '"\\ufeff"', '"%41"', '"+"',
    "0", "-0", "1", "1.0", "1.50", "1e400", "-1e400", "1E+2", "1e-400", "0.1e-7",
    "123456789012345678901234567890", "-9223372036854775809", "NaN", "Infinity", "-Infinity",
    "true", "false", "null", "{}", "[]", '{"n":1}', "[1,2]",
]
JSON_WRAPS = [
    ("plain", lambda t: t), ("ws", lambda t: " \t\r\n" + t + "\n "),
    ("bom", lambda t: "\ufeff" + t), ("vtab", lambda t: "\x0b" + t), ("nbsp", lambda t: t + "\xa0"),
    ("nul-after", lambda t: t + "\x00"), ("formfeed", lambda t: "\x0c" + t),
    ("pretty", lambda t: t.replace(",", " ,\n  ").replace(":", " : ")),
]

JSON_FIXED = [
    b'{"a":"1","\\u0061":"2"}', b'{"a":"1","a":"1"}', b'{"a":"1","a":"2"}',
    b'{"\\u00e9":"1","\xc3\xa9":"2"}', b'{"a/b":"1","a\\/b":"2"}',
    b'{"\xf0\x9f\x98\x80":"1","\\ud83d\\ude00":"2"}',
    b'{"a":"1&b=2"}', b'{"a":"1","b":"2"}', b'{"a=b":"c"}', b'{"a":"b=c"}',
    b'{"a":1.0}', b'{"a":1}', b'{"a":-0}', b'{"a":0}', b'{"a":1e400}', b'{"a":"\\ud800"}',
    b'{"a":"\xed\xa0\x80"}', b'{"a":"\xc0\xaf"}', b'{"a":"\xc1\x81"}', b'{"a":"\xe0\x80\xaf"}',
    b'{"a":"x\r\ny"}', b'{"a":"x\\r\\ny"}', b'{"a":"\x00"}', b'{"a":"\\u0000"}',
    b'\xef\xbb\xbf{"a":"1"}', b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}',
    b'{"a":' + b"9" * 5000 + b"}", b'{"a":1}garbage', b'{"a":1}\n\n', b'  {"a":1}  ',
    b'{"a":"1"}\x00', '{"a":"1"}'.encode("utf-16"), b'{"a":"1",}', b'{"a" "1"}',
    b'{"a":"1"}{"a":"2"}', b'{"":"1"}', b'{"a":null,"b":""}', b'{"a":true,"b":"true"}',
]

FORM_KEYS = [
    "a", "b", "A", "%61", "%41", "a%3Db", "a%26b", "", "a+b", "a%20b", "a%2Bb", "%E2%82%AC",
    "\xe2\x82\xac", "%FF", "%C0%AF", "%00", "a%0D%0Ab", "a;b", "%", "%zz", "a%2", "%25", "k=",
    "partner_code",
]
FORM_VALUES = [
    "1", "", "x+y", "x%20y", "x%2By", "%2B", "+", "a=b", "a%3Db", "a%26b", "%E2%82%AC",
    "\xe2\x82\xac", "%FF", "%C0%AF", "%ED%A0%80", "%00", "\x00", "%0D%0A", "\r\n", "1;b=2",
    "%zz", "%", "%2", "%25", "%u0041", "%C3%A9", "e%CC%81",
]
FORM_SEPARATORS = ["&", "&", "&", "&&", ";", "&amp;"]

FORM_FIXED = [
    b"a=1&a=1", b"a=1&%61=2", b"a=1&A=2", b"a=1;b=2", b"a=1&b", b"a", b"=1", b"a=1&=2",
    b"a=1&&b=2", b"&a=1&", b"a=b=c", b"a=1%26b%3D2", b"a=1&b=2", b"a+b=1&a%20b=2",
    b"a%2Bb=1&a+b=2", b"a=%2B&b=+", b"a=%00", b"a=\x00", b"a=%0D%0A", b"a=\r\n",
    b"a=%C0%AF", b"a=%ED%A0%80", b"a=%FF", b"a=\xff", b"a=%e2%82%ac", b"a=%E2%82%AC",
    b"a=1&b=%", b"a=%%41", b"a=%2541", b"a=1&a=", b"\xef\xbb\xbfa=1", b" a=1", b"a=1 ",
    b"a=1\n", b'{"a":"1"}', b"a=1#frag", b"a=1?b=2", b"a[]=1&a[]=2", b"a[b]=1",
]


def _json_bodies(rng: random.Random, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        members = [
            f"{rng.choice(JSON_KEYS)}:{rng.choice(JSON_VALUES)}" for _ in range(rng.randint(1, 4))
        ]
        text = "{" + ",".join(members) + "}"
        _, wrap = rng.choice(JSON_WRAPS) if rng.random() < 0.3 else JSON_WRAPS[0]
        # JSON_KEYS/VALUES hold raw UTF-8 as latin-1 text (e.g. "\xc3\xa9"): back to bytes.
        raw = wrap(text)
        out.append(raw.encode("utf-8") if any(ord(c) > 255 for c in raw)
                   else raw.encode("latin-1"))
    return out


def _form_bodies(rng: random.Random, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        pairs = []
        for _ in range(rng.randint(1, 4)):
            k, v = rng.choice(FORM_KEYS), rng.choice(FORM_VALUES)
            pairs.append(k if rng.random() < 0.05 else f"{k}={v}")
        sep = rng.choice(FORM_SEPARATORS) if rng.random() < 0.3 else "&"
        out.append(sep.join(pairs).encode("latin-1"))
    return out


def bodies() -> tuple[list[bytes], list[bytes]]:
    rng = random.Random(SEED)
    js = list(dict.fromkeys(JSON_FIXED + _json_bodies(rng, 170)))
    fs = list(dict.fromkeys(FORM_FIXED + _form_bodies(rng, 150)))
    return js, fs


# ==============================================================================================
# Interpretations: each body -> {name: params}; a failing interpretation is left out
# ==============================================================================================


def _py_scalar(v) -> str:
    if isinstance(v, str):
        return v
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    return str(v)  # int / float (Python's formatting: 1e400 -> inf, 1E+2 -> 100.0)


def _pairs_hook(which: str):
    def hook(pairs):
        d: dict = {}
        for k, v in pairs:
            if which == "first" and k in d:
                continue
            d[k] = v
        return d
    return hook


def json_interpretations(body: bytes) -> dict[str, list[tuple[str, str]]]:
    out: dict = {}

    def add(name, fn):
        try:
            params = fn()
            lfsign.canonical_string(params, SECRET).encode("utf-8")  # lone surrogates fail here
            out[name] = params
        except (ValueError, TypeError, RecursionError, UnicodeError, AttributeError):
            pass

    def from_obj(obj):
        if not isinstance(obj, dict):
            raise ValueError("not an object")
        return [(k, _py_scalar(v)) for k, v in obj.items()]

    add("lfsign", lambda: lfsign.params_from_json(body))
    add("lfsign-nested-raw", lambda: lfsign.params_from_json(body, nested="raw"))
    add("py-default", lambda: from_obj(json.loads(body)))  # bytes: BOM/UTF-16 detection
    add("py-first-wins", lambda: from_obj(json.loads(
        body, parse_int=str, parse_float=str, object_pairs_hook=_pairs_hook("first"))))
    add("py-literal-numbers", lambda: from_obj(json.loads(
        body.decode("utf-8"), parse_int=str, parse_float=str,
        object_pairs_hook=_pairs_hook("last"))))
    add("py-surrogatepass", lambda: from_obj(json.loads(
        body.decode("utf-8", "surrogatepass"), parse_int=str, parse_float=str)))
    return out


def _qsl(text: str, *, sep="&", plus=True, errors="strict") -> list[tuple[str, str]]:
    out = []
    for seg in text.split(sep) if sep != "&;" else text.replace(";", "&").split("&"):
        if not seg:
            continue
        k, _, v = seg.partition("=")
        if plus:
            k, v = k.replace("+", " "), v.replace("+", " ")
        out.append((unquote(k, errors=errors), unquote(v, errors=errors)))
    return out


def _uniq(pairs, which):
    d: dict = {}
    for k, v in pairs:
        if which == "first" and k in d:
            continue
        d[k] = v
    return list(d.items())


def form_interpretations(body: bytes) -> dict[str, list[tuple[str, str]]]:
    out: dict = {}

    def add(name, fn):
        try:
            params = fn()
            lfsign.canonical_string(params, SECRET).encode("utf-8")
            out[name] = params
        except (ValueError, UnicodeError):
            pass

    add("lfsign", lambda: lfsign.params_from_form(body))
    add("qsl-last-wins", lambda: _uniq(parse_qsl(body.decode("utf-8"), keep_blank_values=True),
                                       "last"))
    add("qsl-first-wins", lambda: _uniq(parse_qsl(body.decode("utf-8"), keep_blank_values=True),
                                        "first"))
    add("qsl-replace", lambda: _uniq(parse_qsl(body.decode("utf-8", "replace"),
                                               keep_blank_values=True, errors="replace"), "last"))
    add("semicolon-too", lambda: _uniq(_qsl(body.decode("utf-8"), sep="&;"), "last"))
    add("go-drops-semicolon-pairs", lambda: _uniq(
        [p for seg in body.decode("utf-8").split("&") if seg and ";" not in seg
         for p in parse_qsl(seg, keep_blank_values=True)], "last"))
    add("plus-literal", lambda: _uniq(_qsl(body.decode("utf-8"), plus=False), "last"))
    add("latin-1", lambda: _uniq(parse_qsl(body.decode("latin-1"), keep_blank_values=True,
                                           encoding="latin-1"), "last"))
    return out


def cube_interpretations(body: bytes) -> dict[str, str]:
    out = {}

    def add(name, fn):
        try:
            out[name] = fn()
        except (ValueError, TypeError, RecursionError, UnicodeError):
            pass

    add("lfsign", lambda: lfsign.cube_canonical_json(body))
    add("py-default", lambda: json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"),
                                          ensure_ascii=False))
    add("py-ascii", lambda: json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")))
    add("body-as-sent", lambda: body.decode("utf-8"))
    return out


def cube_sig(canonical: str, ts: str) -> str:
    text = f"1.0:HMAC-SHA1:{ts}".encode() + canonical.encode("utf-8", "surrogatepass")
    return f"{CUBE_KEY_ID}/{lfsign.cube_mac_of_text(text, CUBE_KEY)}"


# ==============================================================================================
# Mainstream parse of what the backend received
# ==============================================================================================


# Interpretations that must all agree on an ACCEPTED body (if they read it at all): a body they
# read as different parameter sets is ambiguous and must be rejected, whichever one signed it.
# Not in the set: py-default (Python's own number formatting, 1E+2 -> 100.0: a rendering, not
# another parameter set; its keys and non-number values are checked on the backend's copy),
# plus-literal (RFC 3986 query semantics: wrong for a form body) and latin-1 (not the charset).
MUST_AGREE = {
    "lfsign", "lfsign-nested-raw", "py-first-wins", "py-literal-numbers", "py-surrogatepass",
    "qsl-last-wins", "qsl-first-wins", "qsl-replace", "semicolon-too", "go-drops-semicolon-pairs",
}


def _no_constants(name):
    raise ValueError(f"not JSON: {name}")


def py_view(text):
    """Python's view with every default; integers above CPython's 4300-digit conversion limit
    (which plain json.loads refuses) are compared as their digits."""
    try:
        return json.loads(text)
    except ValueError as e:
        assert "integer string conversion" in str(e), e
        NOTES["cube: plain json.loads refuses a >4300-digit integer"] += 1
        return json.loads(text, parse_int=lambda s: ("int", s))


def backend_json_params(body: bytes) -> list[tuple[str, str]]:
    pairs = json.loads(body.decode("utf-8"), object_pairs_hook=list, parse_int=str,
                       parse_float=str, parse_constant=_no_constants)
    assert isinstance(pairs, list) and all(isinstance(p, tuple) for p in pairs), pairs
    keys = [k for k, _ in pairs]
    assert len(set(keys)) == len(keys), f"duplicate keys accepted: {keys}"
    params = []
    for k, v in pairs:
        assert not isinstance(v, list), f"nested value accepted: {k!r}"
        params.append((k, _py_scalar(v)))
    # Plain json.loads (every default) sees the same keys and the same non-number values. It
    # refuses integers above 4300 digits (CPython's int conversion limit): a backend error, not
    # another reading.
    try:
        plain = json.loads(body)
    except ValueError as e:
        assert "integer string conversion" in str(e), e
        NOTES["json: plain json.loads refuses a >4300-digit integer"] += 1
        return params
    assert set(plain) == set(keys)
    for k, v in plain.items():
        if isinstance(v, (str, bool)) or v is None:
            assert _py_scalar(v) == dict(params)[k]
    return params


def backend_form_params(body: bytes) -> list[tuple[str, str]]:
    text = body.decode("utf-8")
    pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    keys = [k for k, _ in pairs]
    assert len(set(keys)) == len(keys), f"duplicate keys accepted: {keys}"
    try:
        assert parse_qsl(text, keep_blank_values=True, strict_parsing=True) == pairs
    except ValueError:
        assert "&&" in text or text.startswith("&") or text.endswith("&"), text
        NOTES["form: parse_qsl(strict_parsing=True) refuses an empty segment"] += 1
    return pairs


# ==============================================================================================
# The run
# ==============================================================================================


def _send(port, path, headers, body):
    rid = uuid.uuid4().hex
    return send_request(port, "POST", path, headers + [("x-request-id", rid)], body, timeout=10)


def test_parser_differential(diff_guard, backend):
    started = time.monotonic()
    js, fs = bodies()
    port = diff_guard.listen_port
    counts: Counter = Counter()
    accepted_bodies: dict[str, set] = {"json": set(), "form": set(), "cube": set()}
    mismatches: list[str] = []
    n_accepted = 0
    ts = str(now_ms())

    def handle(kind, body, sig_header, params_by_name, resp):
        nonlocal n_accepted
        counts[f"{kind}:requests"] += 1
        if resp.status != 200:
            err = resp.json().get("error") if resp.body.startswith(b"{") else f"envoy-{resp.status}"
            counts[f"{kind}:rejected:{err}"] += 1
            got = len(backend.requests())
            assert got == n_accepted, f"{kind} {body!r}: rejected but the backend got a request"
            return
        n_accepted += 1
        counts[f"{kind}:accepted"] += 1
        accepted_bodies[kind].add(body)
        reqs = backend.wait_requests(n_accepted)
        assert len(reqs) == n_accepted, (kind, body)
        req = reqs[-1]
        assert req.body == body, "byte-for-byte"
        try:
            if kind == "cube":
                canonical = params_by_name
                assert py_view(req.body) == py_view(canonical), "signed text means another thing"
                assert cube_sig(lfsign.cube_canonical_json(req.body), ts) == sig_header
                backend_json_params_like = lfsign.cube_canonical_json(req.body)
                assert backend_json_params_like == canonical
                return
            params = backend_json_params(req.body) if kind == "json" else backend_form_params(
                req.body)
            assert lfsign.sign_md5(params, SECRET) == sig_header, "signature of backend's parse"
            # The interpretation(s) that made this signature saw exactly this parameter set.
            for name, p in params_by_name:
                assert sorted(p) == sorted(params), (
                    f"accepted signature of {name} covers {sorted(p)}, backend sees "
                    f"{sorted(params)}")
        except AssertionError as e:
            mismatches.append(f"{kind} {body!r}: {e}")

    for kind, corpus, interp, ctype in (
        ("json", js, json_interpretations, JSON),
        ("form", fs, form_interpretations, FORM),
    ):
        for body in corpus:
            by_sig: dict[str, list] = {}
            for name, params in interp(body).items():
                by_sig.setdefault(lfsign.sign_md5(params, SECRET), []).append((name, params))
            if not by_sig:  # no interpretation at all: send it with some signature anyway
                by_sig[lfsign.sign_md5([("a", "1")], SECRET)] = []
            counts[f"{kind}:bodies"] += 1
            before = n_accepted
            for sig, named in by_sig.items():
                resp = _send(port, PATH, [("content-type", ctype), ("x-lf-md5", sig)], body)
                handle(kind, body, sig, named, resp)
            if n_accepted > before:
                views = {name: sorted(p) for named in by_sig.values() for name, p in named
                         if name in MUST_AGREE}
                if len({repr(v) for v in views.values()}) > 1:
                    mismatches.append(f"{kind} {body!r}: accepted, but parsers disagree: {views}")

    for body in js:
        by_sig = {}
        for name, canonical in cube_interpretations(body).items():
            by_sig.setdefault(cube_sig(canonical, ts), canonical)
        if not by_sig:
            by_sig[cube_sig("{}", ts)] = "{}"
        counts["cube:bodies"] += 1
        for sig, canonical in by_sig.items():
            hdrs = [("content-type", JSON), ("x-lf-notification-version", "1.0"),
                    ("x-lf-algo", "HMAC-SHA1"), ("x-lf-timestamp", ts), ("x-lf-signature", sig)]
            resp = _send(port, CUBE_PATH, hdrs, body)
            handle("cube", body, sig, canonical, resp)

    time.sleep(0.5)
    assert len(backend.requests()) == n_accepted, "a rejected request leaked late"
    for kind in accepted_bodies:
        counts[f"{kind}:bodies-accepted"] = len(accepted_bodies[kind])
    counts["seconds"] = round(time.monotonic() - started)
    REPORT.update(counts)
    print("\nparser differential:", json.dumps(dict(sorted(counts.items())), indent=1))
    print("notes (accepted; other parsers' views):", json.dumps(dict(NOTES), indent=1))
    assert not mismatches, "\n".join(mismatches[:20])
    # The corpus must exercise both outcomes on every route.
    for kind in ("json", "form", "cube"):
        assert counts[f"{kind}:accepted"] >= 10, counts
        assert counts[f"{kind}:requests"] - counts[f"{kind}:accepted"] >= 50, counts
