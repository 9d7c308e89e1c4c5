"""Cross-ecosystem parser differential: for every request the filter ACCEPTS, every
runtime's own view of the signed fields, and of any query, must equal the signed view.

Corpus (each request carries `x-lf-case: N`; its class in brackets): the genuine controls
[genuine]; the targeted cases: a genuine notification re-sent with `?partner_code=P666666`
[query]; keys that several parsers read as one, `PARTNER_CODE` beside `partner_code`,
`partner.code`, `partner_code[x]`, `ſ`/`K` folds, all signed with the valid key [keys];
`false`/`"false"`, `0`/`"0"`, `null`/`""` swapped under the same x-lf-md5 [types];
`Content-Encoding` gzip, deflate and br with an x-lf-md5 over the decoded text or over the raw
bytes [encoding]; every request of `test_differential.py` (its body generator and
interpretations, imported) [differential] and the request tables of `hostile/test_hostile.py`
(imported) [hostile]; and the path-protection differential's request targets
(`frameworks/spellings.py`, the generator of test_frameworks.py, its seed) with genuine
signatures, when that module is in the tree (`LF_PARSERS_SPELLINGS_DIR` points elsewhere;
absent: said in the printout) [frameworks].

The corpus goes through real Envoy twice, and what the RecordingBackend received (method, path
with query, headers, body) is what the runtimes read:
- teeth run: Envoy without the filter (shipped envoy/envoy.yaml minus the Wasm filter); the
  accepted set is the requests whose signature verifies under lfsign.py (for an encoded body, over
  the raw or the decoded bytes: what a verifier behind an inflating body parser would check).
  The classes query, keys, types and encoding must show disagreements there, else the
  comparison has no teeth.
- filter run: the shipped envoy/envoy.yaml (deny posture); the accepted set is what reached the
  backend with the filter's `x-lf-verified` (what reached it without must be on an exempt path).
  0 disagreements allowed; the genuine controls must be accepted by both runs and show 0
  disagreements in both.

Runtimes (each ONE batch process over all accepted requests of both runs, JSON lines on stdin;
programs under tests/e2e/differential/parsers/, installed by `make parsers`): Python (`json.loads`,
`parse_qsl`/`parse_qs`, werkzeug `request.values` / `get_json`), Node (`JSON.parse`, pinned `qs`,
Express `body-parser` json + urlencoded extended, which inflates gzip/deflate/br), Go
(`encoding/json` into `reflect.StructOf` structs tagged with the signed keys, `url.ParseQuery`),
PHP (`json_decode($b, true)`, `parse_str`). A missing runtime FAILS with how to install it.

Signed view: lfsign.py's (key, text, type) list of what the sender signed (for the targeted
swaps, the genuine body before the swap; else the body that verified). A runtime view agrees when
(a) it parses the body, (b) for every signed key it reads the same text and the same JSON type
(numbers: the same decimal value; objects/arrays: the same JSON value), (c) it sees no key the
signer did not sign (a case variant, a PHP-folded or nested key, a query parameter merged into
the body, ...) and no key twice, and (d) it sees no query parameter (the shipped routes allow no
query). Keys a Go struct tag cannot name (``, `-`, with `,` or `"`) are not read by Go: skipped.
The table (runtime x class: requests, accepted, disagreements, teeth and filter run) is printed.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import brotli
import pytest

import harness
import lfsign
import test_differential as diff
from e2eutil import (
    CUBE_KEY, CUBE_KEY_ID, FORM, JSON, SAMPLE_FORM, SAMPLE_JSON, SECRET, cube_headers,
    json_body_of_size, now_ms, running_envoy, sig_form, sig_json,
)

# The request tables of hostile/test_hostile.py, imported from their own folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hostile"))
import test_hostile as hostile  # noqa: E402

pytestmark = pytest.mark.parsers

HERE = Path(__file__).resolve().parent
PARSERS = HERE / "parsers"
MD5_PATH = "/linksfield/sms-uplink"
CUBE_PATH = "/cube/notify"
# Exact queries the shipped envoy/envoy.yaml allows on its protected routes: none.
ALLOWED_QUERIES: dict[str, set[str]] = {"/linksfield/": set(), "/cube/": set()}
# The shipped config's exempt paths (byte-exact, query ignored): forwarded unverified, so not
# "accepted"; the filter run's accepted set is the requests forwarded with x-lf-verified.
EXEMPT_PATHS = {"/health", "/linksfield/health"}
TEETH_CLASSES = ("query", "keys", "types", "encoding")
CLASSES = ("genuine", *TEETH_CLASSES, "differential", "hostile", "frameworks")
NOTES: Counter = Counter()
INSTALL = "run `make parsers` (tests/e2e/differential/parsers/install.sh: apt-get install {pkg})"


@dataclass
class Case:
    cls: str
    path: str | bytes  # bytes: a raw request target, sent as written
    headers: list[tuple[str, str]]
    body: bytes
    signed_body: bytes | None = None  # what the genuine sender signed, if not the body sent
    chunked: bool = False
    method: str = "POST"


# ==============================================================================================
# Corpus
# ==============================================================================================


def md5h(body_signed: bytes, ctype: str, *extra) -> list[tuple[str, str]]:
    kind = "json" if ctype == JSON else "form"
    return [("content-type", ctype), ("x-lf-md5", lfsign.sign_body(body_signed, SECRET, kind)),
            *extra]


def genuine_cases() -> list[Case]:
    return [
        Case("genuine", MD5_PATH, md5h(SAMPLE_JSON, JSON), SAMPLE_JSON),
        Case("genuine", MD5_PATH, md5h(SAMPLE_FORM, FORM), SAMPLE_FORM),
        Case("genuine", CUBE_PATH, cube_headers(SAMPLE_JSON), SAMPLE_JSON),
        Case("genuine", MD5_PATH, md5h(SAMPLE_JSON, JSON), SAMPLE_JSON, chunked=True),
    ]


def query_cases() -> list[Case]:
    out = []
    for q in ("partner_code=P666666", "PARTNER_CODE=P666666", "partner_code=P666666&x=1"):
        out += [
            Case("query", f"{MD5_PATH}?{q}", md5h(SAMPLE_JSON, JSON), SAMPLE_JSON),
            Case("query", f"{MD5_PATH}?{q}", md5h(SAMPLE_FORM, FORM), SAMPLE_FORM),
            Case("query", f"{CUBE_PATH}?{q}", cube_headers(SAMPLE_JSON), SAMPLE_JSON),
        ]
    return out


REST_JSON = b'"sim_id":"89860220190123456789","imsi":"4230001234567","message_type":"Text"'
REST_FORM = b"sim_id=89860220190123456789&imsi=4230001234567&message_type=Text"


def key_spelling_cases() -> list[Case]:
    jsons = [
        b'{"partner_code":"P1",' + REST_JSON + b',"PARTNER_CODE":"P2"}',
        b'{"partner_code":"P1",' + REST_JSON + b',"Partner_Code":"P2"}',
        b'{"sim_id":"1",' + REST_JSON.replace(b'"sim_id"', b'"\xc5\xbfim_id"') + b"}",
        b'{"partner_code":"P1","kind":"a","\xe2\x84\xaaind":"b"}',
    ]
    forms = [
        b"partner_code=P1&" + REST_FORM + b"&partner.code=P2",
        b"partner_code=P1&" + REST_FORM + b"&partner+code=P2",
        b"partner_code=P1&" + REST_FORM + b"&partner%5Bcode=P2",
        b"partner_code=P1&" + REST_FORM + b"&partner_code%5Bx%5D=P2",
        b"partner_code=P1&" + REST_FORM + b"&PARTNER_CODE=P2",
        b"partner_code=P1&" + REST_FORM + b"&+partner_code=P2",  # PHP strips leading spaces
        b"\xef\xbb\xbfpartner_code=P2&partner_code=P1&" + REST_FORM,  # body-parser drops a BOM
        b"partner_code=P1&text_message=a\x00b&" + REST_FORM,  # parse_str stops at a raw NUL
    ]
    out = [Case("keys", MD5_PATH, md5h(b, JSON), b) for b in jsons]
    out += [Case("keys", CUBE_PATH, cube_headers(b), b) for b in jsons]
    out += [Case("keys", MD5_PATH, md5h(b, FORM), b) for b in forms]
    return out


def type_swap_cases() -> list[Case]:
    out = []
    for as_string, as_typed in ((b'"false"', b"false"), (b'"true"', b"true"), (b'"0"', b"0"),
                                (b'"1.5"', b"1.5"), (b'""', b"null")):
        s = b'{"partner_code":"P1","flag":' + as_string + b"}"
        t = b'{"partner_code":"P1","flag":' + as_typed + b"}"
        # The genuine (string) body's signature on the typed body. (Not the reverse: the md5
        # scheme signs text, so a string body that verifies IS what a string sender signed.)
        out.append(Case("types", MD5_PATH, md5h(s, JSON), t, signed_body=s))
    return out


ENCODERS = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress}
DECODERS = {"gzip": gzip.decompress, "deflate": zlib.decompress, "br": brotli.decompress,
            "x-gzip": gzip.decompress}


def encoding_cases() -> list[Case]:
    out = []
    for enc, fn in ENCODERS.items():
        for body, ctype in ((SAMPLE_JSON, JSON), (SAMPLE_FORM, FORM)):
            ce = ("content-encoding", enc)
            # Compressed body, x-lf-md5 over the decoded text (what an inflating backend reads).
            out.append(Case("encoding", MD5_PATH, md5h(body, ctype, ce), fn(body),
                            signed_body=body))
            # Plain body labelled as compressed, x-lf-md5 over the raw bytes.
            out.append(Case("encoding", MD5_PATH, md5h(body, ctype, ce), body))
        out.append(Case("encoding", CUBE_PATH, cube_headers(SAMPLE_JSON) + [
            ("content-encoding", enc)], fn(SAMPLE_JSON), signed_body=SAMPLE_JSON))
    return out


def differential_cases() -> list[Case]:
    """test_differential.py's requests: each body under every distinct signature of its
    interpretations (md5 JSON and form on /linksfield/, Cube on /cube/)."""
    js, fs = diff.bodies()
    out = []
    for corpus, interp, ctype in ((js, diff.json_interpretations, JSON),
                                  (fs, diff.form_interpretations, FORM)):
        for body in corpus:
            sigs = {lfsign.sign_md5(p, SECRET) for p in interp(body).values()} or {
                lfsign.sign_md5([("a", "1")], SECRET)}
            out += [Case("differential", diff.PATH, [("content-type", ctype), ("x-lf-md5", s)],
                         body) for s in sorted(sigs)]
    ts = str(now_ms())
    for body in js:
        sigs = {diff.cube_sig(c, ts) for c in diff.cube_interpretations(body).values()} or {
            diff.cube_sig("{}", ts)}
        for s in sorted(sigs):
            out.append(Case("differential", diff.CUBE_PATH, [
                ("content-type", JSON), ("x-lf-notification-version", "1.0"),
                ("x-lf-algo", "HMAC-SHA1"), ("x-lf-timestamp", ts), ("x-lf-signature", s)], body))
    return out


def hostile_cases() -> list[Case]:
    """test_hostile.py's request tables (framing attacks that send_request cannot express, and
    over-limit bodies, are left to test_hostile.py itself)."""
    h = hostile
    out = []
    for body in h.MALFORMED_JSON.values():
        out.append(Case("hostile", h.PATH, h.md5_headers(), body))
        out.append(Case("hostile", h.CUBE_PATH, cube_headers(SAMPLE_JSON), body))
    for body in h.DEEP.values():
        out.append(Case("hostile", h.PATH, h.md5_headers(), body))
        out.append(Case("hostile", h.CUBE_PATH, cube_headers(SAMPLE_JSON), body))
    for ctype, body in h.INVALID_UTF8.values():
        out.append(Case("hostile", h.PATH, h.md5_headers(h.GOOD, ctype), body))
    for body in (b"partner_code=P1;sim_id=2", b"partner_code=P1&text=a;b",
                 b"partner_code=P1&a;b=1"):
        for b in (body, body.replace(b";", b"%3B")):
            out.append(Case("hostile", h.PATH, h.md5_headers(sig_form(b), FORM), b))
    for ctype, body in ((JSON, b"{}"), (FORM, b"&&&"), (FORM, b"&")):
        out.append(Case("hostile", h.PATH, h.md5_headers(h.EMPTY_SIG, ctype), body))
    for path, hdrs, body in h.REPEATED.values():
        out.append(Case("hostile", path, hdrs, body))
    for path, hdrs, body in ((h.PATH, h.md5_headers(), SAMPLE_JSON),
                             (h.PATH, h.md5_headers(sig_form(SAMPLE_FORM), FORM), SAMPLE_FORM),
                             (h.CUBE_PATH, cube_headers(SAMPLE_JSON), SAMPLE_JSON)):
        out.append(Case("hostile", path, hdrs, body, chunked=True))
        out.append(Case("hostile", path, h.forged_cube_headers(body) if path == h.CUBE_PATH
                        else h.md5_headers(h.FORGED), body))
    for size in (h.MAX - 1, h.MAX):
        body = json_body_of_size(size)
        out.append(Case("hostile", h.PATH, h.md5_headers(sig_json(body)), body))
    return out


FRAMEWORKS_SEED = 12  # test_frameworks.py's seed


def frameworks_cases() -> list[Case]:
    """The path-protection differential's request targets (frameworks/spellings.py, the
    generator test_frameworks.py uses), each with a GENUINE signature (md5 JSON on
    md5 spellings, Cube on cube spellings): without the filter all of them arrive signed; with it
    only the canonical ones may. Empty (and said so in the printout) while that module is absent."""
    gen_dir = Path(os.environ.get("LF_PARSERS_SPELLINGS_DIR") or HERE / "frameworks")
    if not (gen_dir / "spellings.py").exists():
        return []
    sys.path.insert(0, str(gen_dir))
    import spellings as sp

    out = []
    for spelling in sp.spellings(FRAMEWORKS_SEED):
        hdrs = md5h(SAMPLE_JSON, JSON) if spelling.route == "md5" else cube_headers(SAMPLE_JSON)
        out.append(Case("frameworks", spelling.target, hdrs, SAMPLE_JSON))
    return out


def corpus() -> list[Case]:
    return (genuine_cases() + query_cases() + key_spelling_cases() + type_swap_cases() + encoding_cases()
            + differential_cases() + hostile_cases() + frameworks_cases())


# ==============================================================================================
# Sending and the signed view
# ==============================================================================================


def send_all(port: int, cases: list[Case]) -> dict[int, int]:
    def one(i: int) -> tuple[int, int]:
        c = cases[i]
        hdrs = c.headers + [("x-lf-case", str(i))]
        try:
            if isinstance(c.path, str):
                resp = harness.send_request(port, c.method, c.path, hdrs, c.body,
                                            chunked=c.chunked, timeout=10)
                return i, resp.status
            # A raw target (non-ASCII bytes, absolute form): the request line as written.
            head, payload = harness.build_request(c.method, "/LF-TARGET", hdrs, c.body,
                                                  chunked=c.chunked)
            head = head.replace(b"/LF-TARGET", c.path, 1)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.settimeout(10)
                sock.sendall(head + payload)
                return i, harness._read_response(sock).status
        except (OSError, harness.HarnessError, ValueError):
            return i, -1

    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(one, range(len(cases))))


def recorded_by_case(backend, n: int) -> dict[int, harness.RecordedRequest]:
    time.sleep(0.3)
    out = {}
    for r in backend.requests():
        cid = r.header("x-lf-case")
        if cid is not None:
            assert int(cid) not in out, f"case {cid} reached the backend twice"
            out[int(cid)] = r
    assert all(0 <= k < n for k in out)
    return out


def _one(rec, name):
    vals = rec.header_all(name)
    return vals[0] if len(vals) == 1 else None


def lfsign_verifies(rec: harness.RecordedRequest):
    """(scheme, kind, body that verified) if lfsign.py verifies the recorded request, else None.
    An encoded body may verify over its raw or its decoded bytes."""
    ctype = (rec.header("content-type") or "").lower()
    enc = (rec.header("content-encoding") or "").strip().lower()
    bodies = [rec.body]
    if enc in DECODERS:
        try:
            bodies.append(DECODERS[enc](rec.body))
        except Exception:  # noqa: BLE001 - not that encoding: the raw bytes only
            pass
    # The scheme from the headers, whatever the path (an alias of a route is that route).
    if rec.header_all("x-lf-md5"):
        sig = _one(rec, "x-lf-md5")
        kind = "json" if "json" in ctype else "form" if "x-www-form-urlencoded" in ctype else None
        if sig is None or kind is None:
            return None
        for b in bodies:
            try:
                if lfsign.sign_body(b, SECRET, kind) == sig:
                    return "md5", kind, b
            except (ValueError, UnicodeError, RecursionError):
                pass
    elif rec.header_all("x-lf-signature"):
        hs = [_one(rec, n) for n in ("x-lf-notification-version", "x-lf-algo", "x-lf-timestamp",
                                     "x-lf-signature")]
        if None in hs:
            return None
        version, algo, ts, sig = hs
        for b in bodies:
            try:
                if lfsign.sign_cube(b, CUBE_KEY_ID, CUBE_KEY, ts, version, algo) == sig:
                    return "cube", "json", b
            except (ValueError, UnicodeError, RecursionError):
                pass
    return None


def signed_view(case: Case, verified) -> list[tuple[str, str, str]]:
    scheme, kind, body = verified
    src = case.signed_body if case.signed_body is not None else body
    if scheme == "cube":
        return lfsign.cube_typed_top_level(src)
    return lfsign.typed_params_from_json(src) if kind == "json" else lfsign.typed_params_from_form(
        src)


# ==============================================================================================
# Runtimes
# ==============================================================================================


def _need(cmd: str, pkg: str) -> str:
    path = shutil.which(cmd)
    if not path:
        pytest.fail(f"{cmd} not found: {INSTALL.format(pkg=pkg)}", pytrace=False)
    return path


def runtime_commands(tmp: Path) -> dict[str, list[str]]:
    node = _need("node", "nodejs npm")
    if not (PARSERS / "node" / "node_modules" / "body-parser").is_dir():
        pytest.fail("npm packages missing in tests/e2e/differential/parsers/node: " + INSTALL.format(
            pkg="nodejs npm; npm ci"), pytrace=False)
    go = _need("go", "golang-go")
    php = _need("php", "php-cli")
    exe = tmp / "lf-go-views"
    env = dict(os.environ, GOFLAGS="-mod=mod", GO111MODULE="on")
    env.setdefault("GOCACHE", str(Path.home() / ".cache" / "go-build"))
    build = subprocess.run([go, "build", "-o", str(exe), "."], cwd=PARSERS / "go", env=env,
                           capture_output=True, text=True, timeout=300)
    if build.returncode != 0:
        pytest.fail(f"go build of tests/e2e/differential/parsers/go failed:\n{build.stderr}", pytrace=False)
    return {
        "python": [sys.executable, str(PARSERS / "py_views.py")],
        "node": [node, str(PARSERS / "node" / "views.js")],
        "go": [str(exe)],
        "php": [php, str(PARSERS / "views.php")],
    }


def run_runtimes(commands, requests: list[dict]) -> dict[int, dict[str, dict]]:
    """One process per runtime over every request; {id: {view name: view}}."""
    data = "".join(json.dumps(r) + "\n" for r in requests).encode()
    out: dict[int, dict] = defaultdict(dict)
    for name, cmd in commands.items():
        p = subprocess.run(cmd, input=data, capture_output=True, timeout=180)
        assert p.returncode == 0, f"{name} runtime failed ({p.returncode}): {p.stderr[-2000:]!r}"
        answered = set()
        for line in p.stdout.decode("utf-8", "replace").splitlines():
            doc = json.loads(line)
            answered.add(doc["id"])
            out[doc["id"]].update(doc["views"])
        missing = {r["id"] for r in requests} - answered
        assert not missing, f"{name} runtime gave no answer for {len(missing)} requests"
    return out


# ==============================================================================================
# Comparison
# ==============================================================================================


def _num(text: str):
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _json_value(text: str):
    try:
        return json.loads(text, parse_float=Decimal, parse_int=Decimal)
    except ValueError:
        return ("unparsable", text)


def _no_empty_objects(v):
    """PHP's json_decode($b, true) reads `{}` as an empty array, like `[]`."""
    if isinstance(v, dict):
        return {k: _no_empty_objects(x) for k, x in v.items()} if v else []
    if isinstance(v, list):
        return [_no_empty_objects(x) for x in v]
    return v


def same_value(s_text: str, s_type: str, got) -> bool:
    text, typ = got
    if typ == "empty-array":  # PHP: an empty object and an empty array are one value
        return s_type in ("object", "array") and _json_value(s_text) in ({}, [])
    if typ != s_type:
        return False
    if typ == "number":
        a, b = _num(s_text), _num(text)
        return a is not None and b is not None and a.is_finite() and b.is_finite() and a == b
    if typ in ("object", "array"):
        return _no_empty_objects(_json_value(s_text)) == _no_empty_objects(_json_value(text))
    return text == s_text


def disagreements(signed, view: dict, path: str) -> list[str]:
    if "error" in view:
        return [f"cannot read the body: {view['error']}"]
    reasons = []
    get = view["get"]
    get = dict(get) if isinstance(get, list) else get
    skeys = [k for k, _, _ in signed]
    for k, text, typ in signed:
        got = get.get(k)
        if got is not None and got[1] == "unnameable":
            NOTES["go: signed key no struct tag can name (not read, not compared)"] += 1
            continue
        if got is None:
            reasons.append(f"signed {k!r}={text!r} ({typ}) not read under {k!r}")
        elif not same_value(text, typ, got):
            reasons.append(f"signed {k!r}={text!r} ({typ}), read {got[0]!r} ({got[1]})")
    seen = Counter(p[0] for p in view["params"])
    for k, n in seen.items():
        if k not in skeys:
            reasons.append(f"sees unsigned key {k!r}")
        elif n > 1:
            reasons.append(f"sees {k!r} {n} times")
    raw_path, _, query = path.partition("?")
    allowed = next((qs for prefix, qs in ALLOWED_QUERIES.items() if raw_path.startswith(prefix)),
                   set())
    if view.get("query") and query not in allowed:
        reasons.append(f"sees query parameters {view['query']}")
    return reasons


# ==============================================================================================
# The test
# ==============================================================================================


def _table(title: str, stats, runtimes) -> str:
    cols = [c for c in CLASSES if stats["requests"][c]]
    w = 16
    lines = [f"{title} (cell: accepted/disagreements)",
             "runtime".ljust(20) + "".join(c.rjust(w) for c in cols),
             "requests".ljust(20) + "".join(str(stats["requests"][c]).rjust(w) for c in cols),
             "accepted".ljust(20) + "".join(str(stats["accepted"][c]).rjust(w) for c in cols)]
    for rt in runtimes:
        lines.append(rt.ljust(20) + "".join(
            f"{stats['accepted'][c]}/{stats['dis'][(rt, c)]}".rjust(w) for c in cols))
    return "\n".join(lines)


def test_parser_differential_across_runtimes(envoy_bin, wasm_path, backend_server):
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="lf-parsers-"))
    try:
        commands = runtime_commands(tmp)
        cases = corpus()
        shipped = harness.DEFAULT_YAML
        runs: dict[str, dict] = {}
        for run, kw in (("teeth", {"without_filter": True}), ("filter", {})):
            backend_server.reset()
            with running_envoy(backend_server, envoy_bin, None if kw else wasm_path, shipped,
                               **kw) as envoy:
                statuses = send_all(envoy.listen_port, cases)
                recorded = recorded_by_case(backend_server, len(cases))
            runs[run] = {"statuses": statuses, "recorded": recorded}
        send_seconds = time.monotonic() - started

        # Accepted sets and signed views; one batch of requests for every runtime.
        requests, meta = [], {}
        signer_findings = []
        unverified: Counter = Counter()
        for run_i, run in enumerate(("teeth", "filter")):
            for i, rec in runs[run]["recorded"].items():
                verified = lfsign_verifies(rec)
                if run == "teeth" and verified is None:
                    continue  # teeth run: accepted = lfsign verifies
                if run == "filter" and not rec.header_all("x-lf-verified"):
                    # Forwarded without verification: only the shipped exempt paths may be.
                    unverified[cases[i].cls] += 1
                    if rec.path.split("?", 1)[0] not in EXEMPT_PATHS:
                        signer_findings.append(f"case {i}: forwarded without x-lf-verified on "
                                               f"{rec.path!r}, not an exempt path")
                    continue
                if run == "filter" and runs[run]["statuses"][i] != 200:
                    signer_findings.append(f"case {i}: reached the backend with status "
                                           f"{runs[run]['statuses'][i]}")
                if verified is None:
                    signer_findings.append(f"filter run, case {i} ({cases[i].cls}): accepted, but "
                                           f"lfsign.py does not verify it: {rec.path} "
                                           f"{rec.body[:120]!r}")
                    continue
                signed = signed_view(cases[i], verified)
                rid = run_i * 1_000_000 + i
                meta[rid] = (run, i, signed, rec)
                requests.append({
                    "id": rid, "method": rec.method, "path": rec.path,
                    "headers": [[k, v] for k, v in rec.headers],
                    "body": base64.b64encode(rec.body).decode(), "keys": [k for k, _, _ in signed],
                })
        rt_started = time.monotonic()
        views = run_runtimes(commands, requests)
        rt_seconds = time.monotonic() - rt_started

        view_names = sorted({v for doc in views.values() for v in doc})
        assert view_names == ["go.stdlib", "node.body-parser", "node.stdlib", "php",
                              "py.stdlib", "py.werkzeug"], view_names
        stats = {run: {"requests": Counter(c.cls for c in cases), "accepted": Counter(),
                       "dis": Counter()} for run in runs}
        details: dict[str, list[str]] = {"teeth": [], "filter": []}
        for rid, (run, i, signed, rec) in meta.items():
            cls = cases[i].cls
            stats[run]["accepted"][cls] += 1
            for name in view_names:
                reasons = disagreements(signed, views[rid][name], rec.path)
                if reasons:
                    stats[run]["dis"][(name, cls)] += 1
                    details[run].append(
                        f"case {i} [{cls}] {name}: {'; '.join(reasons)[:400]}\n"
                        f"    request: {rec.method} {rec.path} ct={rec.header('content-type')!r}"
                        f" ce={rec.header('content-encoding')!r} body={rec.body[:160]!r}\n"
                        f"    signed view: {signed}")
        if signer_findings:
            stats["filter"]["dis"][("lfsign", "all")] += len(signer_findings)

        print()
        print(_table("TEETH RUN: Envoy without the filter, accepted = lfsign.py verifies",
                     stats["teeth"], view_names))
        print(_table("FILTER RUN: shipped envoy/envoy.yaml (deny posture)", stats["filter"],
                     view_names))
        fstatus = Counter((cases[i].cls, st) for i, st in runs["filter"]["statuses"].items())
        print("filter run statuses per class: " + ", ".join(
            f"{c}: " + " ".join(f"{st}x{n}" for (cc, st), n in sorted(fstatus.items()) if cc == c)
            for c in CLASSES if stats["filter"]["requests"][c]))
        print("notes: " + json.dumps(dict(NOTES)))
        print("filter run, forwarded unverified to an exempt path (not in the accepted set): "
              + json.dumps(dict(unverified)))
        if not stats["teeth"]["requests"]["frameworks"]:
            print("NOTE: tests/e2e/differential/frameworks/spellings.py (test_frameworks.py) is not "
                  "in this tree: the path-protection corpus is not included")
        print(f"corpus {len(cases)} requests x 2 runs; sending {send_seconds:.1f}s, runtimes "
              f"{rt_seconds:.1f}s ({len(requests)} requests each), total "
              f"{time.monotonic() - started:.1f}s")
        if details["filter"]:
            print("FILTER RUN disagreements:\n" + "\n".join(details["filter"]))

        # Controls: genuine requests accepted by both runs, read identically everywhere.
        n_genuine = stats["teeth"]["requests"]["genuine"]
        for run in runs:
            assert stats[run]["accepted"]["genuine"] == n_genuine, (run, stats[run]["accepted"])
            bad = [d for d in details[run] if "[genuine]" in d]
            assert not bad, f"{run} run: genuine requests read differently:\n" + "\n".join(bad)
        # Teeth: without the filter, every targeted class shows disagreements.
        for cls in TEETH_CLASSES:
            assert stats["teeth"]["accepted"][cls] > 0, (cls, stats["teeth"]["accepted"])
            n = sum(stats["teeth"]["dis"][(v, cls)] for v in view_names)
            assert n > 0, f"teeth run: no runtime disagrees on class {cls}: the check is blind"
        # With the filter: every accepted request is read as signed, by every runtime.
        assert not signer_findings, "\n".join(signer_findings[:20])
        assert not details["filter"], (
            f"{len(details['filter'])} disagreements on requests the filter accepted:\n"
            + "\n".join(details["filter"][:20]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
