"""Differential against real web frameworks: no spelling of a protected path reaches a
handler through the filter.

Frameworks (tests/e2e/differential/frameworks/, installed and pinned by `make frameworks`): Tomcat 10
(DefaultServlet, a static file at each protected path), Express 4 and 5, Flask and Django under
gunicorn, FastAPI under uvicorn, Go net/http, axum, and nginx (proxy_pass) in front of Express 4.
Each has a handler on /linksfield/sms (md5 route) and /cube/notify (cube route) that records
every invocation with the request's `x-fw-seq` header.

1. Direct (no Envoy): every spelling from the seeded generator (frameworks/spellings.py, >= 1,000
   byte-distinct targets per protected path) is sent raw to every framework; the spellings that
   reach a handler are that framework's aliases. The known ones must show (Tomcat
   `/linksfield;jsessionid=x/sms`, Express `/LinksField/sms`), else the differential has no teeth.
2. Through Envoy (shipped deny config in hold and buffer mode, and the route-list config), with a
   recording TCP relay between Envoy and the framework: every spelling, FORGED (wrong x-lf-md5 /
   wrong x-lf-signature), must cause zero handler invocations; under the deny posture also zero
   bytes on the relay. The route-list posture forwards, by design, every path that is no
   protected route: there no spelling that any framework showed as an alias in 1 may put a byte
   on the relay, and the others forwarded are counted and printed (by class). The genuine md5 and
   Cube requests on the canonical paths still reach their handler exactly once.
3. The aliases found in 1 are written as JSON lines and fed to the native model
   (`cargo test --release --test route_aliases`, LF_FRAMEWORK_ALIASES): each must classify as a
   protected route or a non-canonical alias of one.

Runs once (marker `frameworks`; `make e2e-matrix` deselects it).
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import harness
from e2eutil import GRACE, JSON, SAMPLE_JSON, cube_headers, sig_json

sys.path.insert(0, str(Path(__file__).resolve().parent / "frameworks"))

import fwlib  # noqa: E402
import spellings as sp  # noqa: E402

pytestmark = [pytest.mark.frameworks, pytest.mark.pins_yaml]

SEED = 12
SPELLINGS = sp.spellings(SEED)
SNAPSHOT = harness.REPO / "tests" / "data" / "framework-aliases.jsonl"
WORKERS = 8
# The aliases the differential must find directly, or it proves nothing.
KNOWN_ALIASES = {
    "tomcat10": [("md5", b"/linksfield;jsessionid=x/sms")],
    "express4": [("md5", b"/LinksField/sms")],
    "express5": [("md5", b"/LinksField/sms")],
}
WRONG_CUBE_KEY = "0" * 64

FORGED = {
    "md5": [("content-type", JSON), ("x-lf-md5", sig_json(SAMPLE_JSON, "not-the-secret"))],
    "cube": None,  # built per request (fresh timestamp) in _forged_headers
}


def _forged_headers(route: str) -> list[tuple[str, str]]:
    if route == "md5":
        return FORGED["md5"]
    return cube_headers(SAMPLE_JSON, key=WRONG_CUBE_KEY)


def _genuine_headers(route: str) -> list[tuple[str, str]]:
    if route == "md5":
        return [("content-type", JSON), ("x-lf-md5", sig_json(SAMPLE_JSON))]
    return cube_headers(SAMPLE_JSON)


# Filled by the tests, printed by test_zz_table.
RESULTS: dict = {"direct": {}, "envoy": {}}


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frameworks():
    made: list[fwlib.Framework] = []
    try:
        try:
            express4 = fwlib.Express(4)
            fws = [fwlib.Tomcat(), express4, fwlib.Express(5), fwlib.Flask(), fwlib.Django(),
                   fwlib.FastAPI(), fwlib.GoNetHttp(), fwlib.Axum()]
            made.extend(fws)
            for f in fws:
                f.start()
            front = fwlib.NginxFront(express4)
            made.append(front)
            front.start()
        except (fwlib.FrameworkMissing, RuntimeError) as e:
            pytest.fail(str(e), pytrace=False)
        yield made
    finally:
        for f in reversed(made):
            f.close()


@pytest.fixture(scope="module")
def relay():
    r = fwlib.Relay()
    try:
        yield r
    finally:
        r.close()


def _send_all(port: int, phase: str, items, headers_of) -> dict[str, int]:
    """Send each spelling once (raw, new connection, WORKERS at a time); {seq: status}."""

    def one(i_s):
        i, s = i_s
        seq = f"{phase}.{i}"
        status, _ = fwlib.send_raw(port, fwlib.raw_request(s.target, headers_of(s.route),
                                                          SAMPLE_JSON, seq))
        return seq, status

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return dict(pool.map(one, enumerate(items)))


@pytest.fixture(scope="module")
def direct(frameworks, tmp_path_factory):
    """Every spelling sent directly to every framework: {framework: {index: handler route}}."""
    found: dict[str, dict[int, str]] = {}
    for fw in frameworks:
        phase = f"direct-{fw.name}"
        _send_all(fw.port, phase, SPELLINGS, _forged_headers)
        time.sleep(GRACE)
        inv = fw.invocations()
        hits: dict[int, str] = {}
        for seq, routes in inv.items():
            p, _, idx = seq.rpartition(".")
            if p == phase:
                assert len(routes) == 1, (fw.name, seq, routes)
                hits[int(idx)] = routes[0]
        found[fw.name] = hits
    RESULTS["direct"] = found
    out = tmp_path_factory.mktemp("aliases") / "framework-aliases.jsonl"
    out.write_text(_aliases_jsonl(found))
    return found, out


def _aliases_jsonl(found: dict[str, dict[int, str]]) -> str:
    """One JSON object per line: route (handler reached), class, target and path (raw bytes as
    latin-1 text: one character per byte), frameworks (that routed it to the handler)."""
    by_target: dict[tuple[str, bytes], dict] = {}
    for name, hits in found.items():
        for idx, route in hits.items():
            s = SPELLINGS[idx]
            if s.cls == "canonical":
                continue
            rec = by_target.setdefault((route, s.target), {
                "route": route, "class": s.cls, "target": s.target.decode("latin-1"),
                "path": s.path.decode("latin-1"), "frameworks": []})
            rec["frameworks"].append(name)
    lines = [json.dumps(dict(r, frameworks=sorted(r["frameworks"])), sort_keys=True)
             for _, r in sorted(by_target.items())]
    return "".join(line + "\n" for line in lines)


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_generator_is_deterministic_and_covers_every_class():
    assert sp.spellings(SEED) == SPELLINGS
    assert sp.spellings(SEED + 1) != SPELLINGS
    for route in sp.CANONICAL:
        targets = [s.target for s in SPELLINGS if s.route == route]
        assert len(set(targets)) == len(targets) >= 1000, (route, len(targets))
        counts = collections.Counter(s.cls for s in SPELLINGS if s.route == route)
        for cls in sp.CLASSES:
            assert counts[cls] >= 30, (route, cls, counts[cls])
        assert all(b"\r" not in t and b"\n" not in t for t in targets)
    for _, _, t in sp.PINNED:
        assert any(s.target == t for s in SPELLINGS), t


def test_direct_every_framework_serves_the_canonical_paths(direct):
    found, _ = direct
    for name, hits in found.items():
        for route in sp.CANONICAL:
            idx = next(i for i, s in enumerate(SPELLINGS) if s.route == route and s.cls == "canonical")
            assert hits.get(idx) == route, f"{name}: canonical {route} path did not reach its handler"


def test_direct_known_aliases_show(direct, capsys):
    """The differential's teeth: without Envoy, these frameworks route these aliases."""
    found, _ = direct
    with capsys.disabled():
        _print_direct_counts(found)
    for name, known in KNOWN_ALIASES.items():
        for route, target in known:
            idx = next(i for i, s in enumerate(SPELLINGS) if s.target == target)
            assert found[name].get(idx) == route, f"{name} did not route {target!r} to {route}"
    # nginx passes the raw request target on: Express's case aliases show through it too.
    assert any(SPELLINGS[i].cls == "case" for i in found["nginx+express4"])


def _print_direct_counts(found):
    names = list(found)
    rows = [("class",) + tuple(names)]
    for route in sp.CANONICAL:
        for cls in ["canonical"] + sp.CLASSES:
            idxs = [i for i, s in enumerate(SPELLINGS) if s.route == route and s.cls == cls]
            rows.append((f"{route}/{cls} ({len(idxs)})",)
                        + tuple(str(sum(1 for i in idxs if i in found[n])) for n in names))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    print("\nspellings reaching a handler DIRECTLY (no Envoy), per class x framework:")
    for r in rows:
        print("  " + "  ".join(v.rjust(w) for v, w in zip(r, widths)))


def _routes_yaml(tmp_path_factory) -> tuple[Path, dict | None]:
    """envoy/envoy-routes.yaml once main ships it; until then envoy/envoy.yaml with the plugin
    JSON given "posture": "route_list" (the harness writes it into its temp config)."""
    shipped = harness.REPO / "envoy" / "envoy-routes.yaml"
    if shipped.is_file():
        return shipped, None
    doc = json.loads(harness.embedded_plugin_config(harness.DEFAULT_YAML))
    doc["posture"] = "route_list"
    return harness.DEFAULT_YAML, doc


CONFIGS = ["deny-hold", "deny-buffered", "route_list"]
_REQUEST_HEAD = re.compile(rb"([A-Z]+) ([^ \r\n]*) HTTP/1\.1\r\n((?:[^\r\n]+\r\n)*)\r\n")


def _forwarded_targets(upstream: bytes, phase: str) -> dict[int, bytes]:
    """{spelling index: request target as Envoy forwarded it} from the relay's bytes."""
    out: dict[int, bytes] = {}
    prefix = f"x-fw-seq: {phase}.".encode()
    for m in _REQUEST_HEAD.finditer(upstream):
        for line in m.group(3).split(b"\r\n"):
            if line.startswith(prefix) and line[len(prefix):].isdigit():
                out[int(line[len(prefix):])] = m.group(2)
    return out


def _through_envoy(env: harness.Envoy, fw: fwlib.Framework, relay: fwlib.Relay, config: str,
                   alias_paths: set[bytes], failures: list[str]) -> dict:
    """Every spelling, forged, through `env` to `fw` (relay in between): appends a line to
    `failures` per leak and returns the counts for the table."""
    relay.retarget(fw.port)
    relay.reset()
    phase = f"{config}-{fw.name}"
    statuses = _send_all(env.listen_port, phase, SPELLINGS, _forged_headers)
    time.sleep(GRACE)
    inv = {s for s in fw.invocations() if s.startswith(phase + ".")}
    upstream = b"".join(relay.connections())
    fwd = {i for i in range(len(SPELLINGS))
           if f"x-fw-seq: {phase}.{i}\r\n".encode() in upstream}
    # Deny posture: nothing forged is forwarded. Route-list posture forwards, by design, paths
    # that are no protected route: there a forged spelling must reach no handler, and no request
    # may be forwarded whose target AS FORWARDED (after Envoy's path normalisation) is a
    # protected path or an alias any framework showed directly.
    forwarded_target = _forwarded_targets(upstream, phase)
    unparsed = fwd - forwarded_target.keys()
    if unparsed:
        failures.append(f"{fw.name}: {len(unparsed)} forwarded requests not parsed from the relay")
    may_forward = set() if config.startswith("deny") else {
        i for i in fwd if i in forwarded_target and forwarded_target[i] not in alias_paths}
    leaked = [i for i in range(len(SPELLINGS))
              if f"{phase}.{i}" in inv or (i in fwd and i not in may_forward)]
    for i in leaked[:10]:
        s = SPELLINGS[i]
        failures.append(f"{fw.name}: forged {s.route}/{s.cls} {s.target!r} -> status "
                        f"{statuses[f'{phase}.{i}']}, handler "
                        f"{'INVOKED' if f'{phase}.{i}' in inv else 'not invoked'}, "
                        + (f"FORWARDED upstream as {forwarded_target.get(i)!r}"
                           if i in fwd else "not forwarded"))
    if len(leaked) > 10:
        failures.append(f"{fw.name}: ... {len(leaked) - 10} more forged spellings leaked")
    if upstream and not fwd:
        failures.append(f"{fw.name}: {len(upstream)} unattributed bytes on the relay: "
                        f"{upstream[:200]!r}")
    return {"tried": len(SPELLINGS), "handler": len(inv), "forwarded": len(fwd),
            "forwarded_non_alias": len(may_forward), "relay_bytes": len(upstream),
            "leaked": len(leaked),
            "non_alias_classes": collections.Counter(SPELLINGS[i].cls for i in may_forward),
            "statuses": collections.Counter(statuses.values())}


def _genuine_pass(env, fw, relay, config, failures) -> None:
    """The genuine md5 and Cube requests on the canonical paths reach their handler once each."""
    relay.reset()
    for route, canon in sp.CANONICAL.items():
        seq = f"{config}-{fw.name}.genuine-{route}"
        status, raw = fwlib.send_raw(env.listen_port, fwlib.raw_request(
            canon, _genuine_headers(route), SAMPLE_JSON, seq))
        time.sleep(0.05)
        got = fw.invocations().get(seq, [])
        if status != 200 or got != [route]:
            failures.append(f"{fw.name}: genuine {route} on {canon!r}: status {status}, "
                            f"handler invocations {got}: {raw[:200]!r}")
    if relay.total_bytes() == 0:
        failures.append(f"{fw.name}: genuine requests put no bytes on the relay")


def _alias_paths(direct) -> set[bytes]:
    found, _ = direct
    return {SPELLINGS[i].path for hits in found.values() for i in hits}


def _start(env: harness.Envoy, what: str) -> harness.Envoy:
    try:
        return env.start()
    except harness.HarnessError as e:
        env.close()
        pytest.fail(f"{what}: {e}", pytrace=False)


@pytest.mark.parametrize("config", CONFIGS)
def test_forged_never_reaches_a_handler_through_envoy(config, frameworks, relay, direct,
                                                      envoy_bin, wasm_path, tmp_path_factory):
    if config == "deny-hold":
        yaml_path, plugin = harness.DEFAULT_YAML, None
    elif config == "deny-buffered":
        yaml_path, plugin = harness.REPO / "envoy" / "envoy-buffered.yaml", None
    else:
        yaml_path, plugin = _routes_yaml(tmp_path_factory)
    env = _start(harness.Envoy(relay.port, yaml_path=yaml_path, envoy_bin=envoy_bin,
                               wasm_path=wasm_path, plugin_config=plugin), config)
    failures: list[str] = []
    per_fw: dict[str, dict] = {}
    alias_paths = _alias_paths(direct)
    try:
        for fw in frameworks:
            per_fw[fw.name] = _through_envoy(env, fw, relay, config, alias_paths, failures)
            _genuine_pass(env, fw, relay, config, failures)
    finally:
        env.close()
        RESULTS["envoy"][config] = per_fw
    print(f"\n{config}: per framework {{handler invocations, relay bytes, statuses}} of forged:")
    for name, r in per_fw.items():
        print(f"  {name}: handler {r['handler']}, forwarded {r['forwarded']} "
              f"({r['relay_bytes']} bytes; no framework's alias: {r['forwarded_non_alias']} "
              f"{dict(r['non_alias_classes'])}), statuses {dict(sorted(r['statuses'].items()))}")
    assert not failures, f"{config}: {len(failures)} failures:\n" + "\n".join(failures[:60])


@pytest.mark.parametrize("config", ["deny-hold", "route_list"])
def test_the_checks_catch_leaks_without_the_filter(config, frameworks, relay, direct, envoy_bin,
                                                   tmp_path_factory):
    """Self-check: the same checks, through the same Envoy config with the filter removed, find
    the Express and Tomcat aliases reaching the handler (else the zeros above mean nothing)."""
    yaml_path = harness.DEFAULT_YAML if config == "deny-hold" else _routes_yaml(tmp_path_factory)[0]
    env = _start(harness.Envoy(relay.port, yaml_path=yaml_path, envoy_bin=envoy_bin,
                               without_filter=True), f"{config} without the filter")
    alias_paths = _alias_paths(direct)
    try:
        for name in ("express4", "tomcat10"):
            fw = next(f for f in frameworks if f.name == name)
            failures: list[str] = []
            r = _through_envoy(env, fw, relay, f"nofilter-{config}", alias_paths, failures)
            assert r["handler"] > 0 and r["leaked"] >= r["handler"] and failures, (name, r)
            (route, target), = KNOWN_ALIASES[name]
            assert any(repr(target) in line and "INVOKED" in line for line in failures) or \
                r["leaked"] > 10, (name, failures[:5])
    finally:
        env.close()


def test_native_model_classifies_every_alias(direct):
    """Every alias a framework showed classifies as a protected route (or an alias of one) in the
    native model (tests/route_aliases.rs), the fresh ones and the committed snapshot."""
    _, fresh = direct
    if os.environ.get("LF_WRITE_ALIAS_SNAPSHOT"):  # refresh the committed snapshot
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(fresh.read_text())
    n_fresh = len(fresh.read_text().splitlines())
    snap = set(SNAPSHOT.read_text().splitlines()) if SNAPSHOT.is_file() else set()
    new = [line for line in fresh.read_text().splitlines() if line not in snap]
    print(f"\n{n_fresh} aliases found directly ({fresh}); {len(new)} not in {SNAPSHOT.name}")
    for line in new[:20]:
        print("  new:", line)
    cargo = os.environ.get("CARGO", "cargo")
    r = subprocess.run(
        [cargo, "test", "--release", "--test", "route_aliases", "--", "--nocapture"],
        cwd=harness.REPO, env=dict(os.environ, LF_FRAMEWORK_ALIASES=str(fresh)),
        capture_output=True, text=True, timeout=900,
    )
    tail = "\n".join((r.stdout + r.stderr).splitlines()[-60:])
    assert r.returncode == 0, f"cargo test --release --test route_aliases failed:\n{tail}"


def test_zz_table(capsys):
    """The summary table (printed even under -q). Fails if any earlier phase did not record."""
    direct_found = RESULTS["direct"]
    rows = [("framework", "spellings tried", "aliases accepted directly",
             *[f"leaked via {c}" for c in CONFIGS])]
    for name, hits in direct_found.items():
        aliases = sum(1 for i in hits if SPELLINGS[i].cls != "canonical")
        cells = []
        for c in CONFIGS:
            r = RESULTS["envoy"].get(c, {}).get(name)
            cells.append("not run" if r is None else
                         f"{r['leaked']} (handler {r['handler']}, fwd {r['forwarded']}"
                         f"{'' if c.startswith('deny') else ' non-alias ' + str(r['forwarded_non_alias'])}"
                         f", {r['relay_bytes']} B)")
        rows.append((name, str(len(SPELLINGS)), str(aliases), *cells))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    with capsys.disabled():
        print("\n\nframework differential: forged spellings leaked through the filter (must be 0) = "
              "reaching a handler, or forwarded (deny: any; route_list: a direct alias)")
        for r in rows:
            print("  " + " | ".join(v.ljust(w) for v, w in zip(r, widths)))
    assert direct_found, "the direct run did not record (see the failures above)"
    assert all(c in RESULTS["envoy"] for c in CONFIGS), "an Envoy phase did not record"
