"""Prometheus alerting/recording rules (deploy/prometheus/lf-webhook-guard.rules.yaml) and
the Grafana dashboard (deploy/grafana/lf-webhook-guard.json), checked against a real Envoy.

One Envoy (envoy/envoy-dynamic.yaml, the crash-probe build, FAIL_RELOAD, a shadow route and a
second md5 key) gets a scripted mix in stages: genuine traffic per key, a forged burst, shadow
failures, a refused config push, a VM crash, requests refused while the VM is down, the reload.
/stats/prometheus is scraped after every stage. promtool's input series are those scraped
series (names, labels, values), each stage's real increments replayed minute by minute in a
scenario; every alert fires in one scenario and stays silent in another at the same time.
Every series the rules and dashboard panels name must be in the scraped output, with the
labels and label values they match on. Real tools: promtool from Debian's `prometheus` package
(`make e2e-tools`); missing, the test fails and says how to install it.

Runs once (marked pins_yaml: its own config, deselected by the other matrix cells).
"""

from __future__ import annotations

import copy
import json
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

import harness
import promutil
from ecdsutil import DYNAMIC_YAML, ECDS_STAT, DynamicEnvoy, resource_typed_config
from e2eutil import sig_json
from harness import send_request
from opsutil import cube_headers, notification, post_md5
from test_crash import PROBE_WASM

pytestmark = pytest.mark.pins_yaml

RULES = harness.REPO / "deploy" / "prometheus" / "lf-webhook-guard.rules.yaml"
DASHBOARD = harness.REPO / "deploy" / "grafana" / "lf-webhook-guard.json"
NEXT_ENV, NEXT_SECRET = "LF_WEBHOOK_SECRET_NEXT", "next-alerts-S3cret"
JOB = "lf-webhook-guard"
# A route whose fleet de-dup store is an Envoy cluster that refuses every connection (a loopback
# port bound but not listening): each store call fails, on_error forward keeps delivering.
STORE_CLUSTER = "etcd_refused"
STORE_ROUTE = {"name": "store", "path_prefix": "/store/", "methods": ["POST"], "scheme": "md5",
               "dedup": {"window_seconds": 120, "max_entries": 100,
                         "store": {"etcd": {"cluster": STORE_CLUSTER, "on_error": "forward",
                                            "timeout_ms": 200}}}}
STORE_COUNTERS = ("lf_webhook_guard_dedup_store_errors", "lf_webhook_guard_dedup_store_timeouts")


def _mix_plugin() -> dict:
    plugin = json.loads(resource_typed_config()["config"]["configuration"]["value"])
    plugin = copy.deepcopy(plugin)
    plugin["keys"].append({"id": "next", "secret_env": NEXT_ENV, "schemes": ["md5"]})
    plugin["routes"].append({"name": "shadow", "path_prefix": "/shadow/", "methods": ["POST"],
                             "scheme": "md5", "mode": "shadow"})
    plugin["routes"].append(copy.deepcopy(STORE_ROUTE))
    return plugin


def _refusing_store_yaml(tmp: Path, port: int) -> Path:
    """envoy-dynamic.yaml plus the STORE_CLUSTER: one STATIC endpoint on a refusing port."""
    cfg = yaml.safe_load(DYNAMIC_YAML.read_text())
    cfg["static_resources"]["clusters"].append({
        "name": STORE_CLUSTER, "type": "STATIC", "connect_timeout": "0.25s",
        "load_assignment": {"cluster_name": STORE_CLUSTER, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                         "port_value": port}}}}]}]}})
    path = tmp / "envoy-dynamic-store.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _wasm_config(c: dict) -> None:
    """FAIL_RELOAD and NEXT_ENV allowed into the VM (idempotent: a push with it keeps the same
    vm_config, so Envoy reuses the running VM and the plugin's config_failures counter stays)."""
    c.pop("fail_open", None)
    c["failure_policy"] = "FAIL_RELOAD"
    keys = c["vm_config"]["environment_variables"]["host_env_keys"]
    if NEXT_ENV not in keys:
        keys.append(NEXT_ENV)


@pytest.fixture(scope="module")
def promtool() -> str:
    tool = promutil.find_promtool()
    if not tool:
        pytest.fail(promutil.PROMTOOL_MISSING, pytrace=False)
    return tool


@pytest.fixture(scope="module")
def mix(envoy_bin, backend_server, tmp_path_factory):
    """{stage: Scrape} after each stage of the scripted mix, plus the final raw text."""
    if not PROBE_WASM.is_file():
        pytest.fail(f"crash-probe filter not found at {PROBE_WASM}: run `make wasm-crash-probe`",
                    pytrace=False)
    # bound, never listening: the kernel refuses connections to it and nobody else can take it
    refusing = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    refusing.bind(("127.0.0.1", 0))
    yaml_path = _refusing_store_yaml(tmp_path_factory.mktemp("alerts"), refusing.getsockname()[1])
    env = DynamicEnvoy(backend_server.port, envoy_bin=envoy_bin, wasm_path=str(PROBE_WASM),
                       yaml_path=yaml_path,
                       plugin_config=_mix_plugin(), wasm_config=_wasm_config,
                       env={NEXT_ENV: NEXT_SECRET},
                       extra_args=["--reject-unknown-dynamic-fields"])
    try:
        env.start()
    except harness.HarnessError as err:
        env.close()
        refusing.close()
        pytest.fail(str(err), pytrace=False)
    port = env.listen_port
    snaps: dict[str, promutil.Scrape] = {}
    texts: dict[str, str] = {}

    def scrape(stage: str) -> None:
        status, text = env.admin_get("/stats/prometheus")
        assert status == 200
        texts[stage] = text
        snaps[stage] = promutil.parse_scrape(text)

    def expect(resp, status):
        assert resp.status == status, (resp.status, resp.body, env.log_tail())

    try:
        scrape("baseline")
        for i in range(5):
            expect(post_md5(env, "/linksfield/sms", notification(100 + i)), 200)
        scrape("genuine_demo")
        for i in range(3):
            expect(post_md5(env, "/linksfield/sms", notification(200 + i), secret=NEXT_SECRET), 200)
        scrape("genuine_next")
        for i in range(2):
            body = notification(300 + i)
            expect(send_request(port, "POST", "/cube/usage", cube_headers(body), body), 200)
        scrape("genuine_cube")
        for i in range(30):
            body = notification(400 + i)
            expect(post_md5(env, "/linksfield/sms", body, sig=sig_json(body, "forger")), 401)
        for i in range(5):
            expect(post_md5(env, "/linksfield/sms", notification(500 + i), sig=None), 401)
        scrape("forged")
        for i in range(3):
            body = notification(600 + i)
            expect(post_md5(env, "/shadow/sms", body, sig=sig_json(body, "forger")), 200)
        scrape("shadow")
        store_before = sum(snaps["shadow"].counters().get((n, ()), 0.0) for n in STORE_COUNTERS)
        for i in range(3):
            # verified, the store lookup fails, on_error forward: delivered
            expect(post_md5(env, "/store/sms", notification(650 + i)), 200)
        scrape("store_fail")
        store_after = sum(snaps["store_fail"].counters().get((n, ()), 0.0)
                          for n in STORE_COUNTERS)
        assert store_after >= store_before + 3, (store_before, store_after, env.log_tail())
        before = env.ecds_stats()["config_fail"]
        env.push(dict(_mix_plugin(), max_body_byte=1), wasm_config=_wasm_config)
        assert env.wait_stat(ECDS_STAT + "config_fail", lambda v: v > before) == before + 1
        scrape("push_fail")
        expect(post_md5(env, "/linksfield/sms", notification(700),
                        extra=[("x-lf-crash-probe", "1")]), 503)
        scrape("crash")
        for i in range(3):
            expect(post_md5(env, "/linksfield/sms", notification(800 + i)), 503)
        scrape("vm_down")
        deadline = time.monotonic() + 8
        while post_md5(env, "/linksfield/sms", notification(900)).status != 200:
            assert time.monotonic() < deadline, "VM not reloaded"
            time.sleep(0.1)
        scrape("reloaded")
        instance = f"127.0.0.1:{env.admin_port}"
    finally:
        env.close()
        refusing.close()
    return {"snaps": snaps, "texts": texts, "instance": instance}


STAGES = ["genuine_demo", "genuine_next", "genuine_cube", "forged", "shadow", "store_fail",
          "push_fail", "crash", "vm_down", "reloaded"]


def _deltas(snaps: dict[str, promutil.Scrape]) -> dict[str, dict]:
    """Per stage: the counters' real increments during that stage (new series: their value)."""
    out = {}
    prev = snaps["baseline"].counters()
    for stage in STAGES:
        cur = snaps[stage].counters()
        out[stage] = {k: v - prev.get(k, 0.0) for k, v in cur.items() if v != prev.get(k, 0.0)}
        prev = cur
    return out


def _rule_exprs() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [r["expr"] for g in doc["groups"] for r in g["rules"]]


def _used_names() -> set[str]:
    return set().union(*(promutil.metric_names(e) for e in _rule_exprs()))


def _input_series(mix, timeline: list[tuple[str, ...]]) -> list[dict]:
    """promtool input_series: every scraped counter the rules name, sampled each minute: the
    baseline scrape, then each minute adds the real increments of the stages in `timeline`."""
    snaps = mix["snaps"]
    deltas = _deltas(snaps)
    base = snaps["baseline"].counters()
    names = _used_names()
    keys = sorted({k for s in snaps.values() for k in s.counters() if k[0] in names})
    extra = {"job": JOB, "instance": mix["instance"]}
    series = []
    for key in keys:
        value = base.get(key)
        values = ["_" if value is None else repr(value)]
        for minute in timeline:
            for stage in minute:
                if key in deltas[stage]:
                    value = (value or 0.0) + deltas[stage][key]
                elif value is None and key in snaps[stage].counters():
                    value = snaps[stage].counters()[key]
            values.append("_" if value is None else repr(value))
        series.append({"series": promutil.series_text(key, extra), "values": " ".join(values)})
    return series


def _rules_by_alert() -> dict[str, dict]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def _expected(alert: str, labels: dict[str, str]) -> dict:
    rule = _rules_by_alert()[alert]
    all_labels = dict(rule.get("labels", {})) | labels
    annotations = {
        k: re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: all_labels[m.group(1)], v)
        for k, v in rule.get("annotations", {}).items()
    }
    return {"exp_labels": all_labels, "exp_annotations": annotations}


G = ("genuine_demo", "genuine_next", "genuine_cube")


def _scenarios(mix) -> list[tuple[str, list, str, list[dict], list[dict]]]:
    """(alert, firing timeline, eval time, expected alerts, silent timeline)."""
    inst = {"job": JOB, "instance": mix["instance"]}
    shadow_reasons = sorted(
        dict(k[1])["lf_reason"] for k in _deltas(mix["snaps"])["shadow"]
        if k[0] == "lf_webhook_guard_shadow_failed")
    assert shadow_reasons == ["invalid_signature"], shadow_reasons
    return [
        ("LfWebhookForgedSignatureBurst", [G] * 10 + [G + ("forged",)] + [G] * 5, "14m",
         [_expected("LfWebhookForgedSignatureBurst", {})], [G] * 16),
        ("LfWebhookAllSignaturesFailing", [G] * 30 + [("forged",)] * 25, "54m",
         [_expected("LfWebhookAllSignaturesFailing", {})], [G + ("forged",)] * 55),
        ("LfWebhookKeyStoppedVerifying", [G] * 60 + [("genuine_demo", "genuine_cube")] * 40, "95m",
         [_expected("LfWebhookKeyStoppedVerifying", {"lf_scheme": "md5", "lf_key": "next"})],
         [G] * 100),
        ("LfWebhookShadowFailures", [G] * 10 + [G + ("shadow",)] + [G] * 3, "13m",
         [_expected("LfWebhookShadowFailures", {"lf_reason": r}) for r in shadow_reasons],
         [G] * 14),
        ("LfWebhookDedupStoreFailing", [G] * 10 + [G + ("store_fail",)] + [G] * 3, "13m",
         [_expected("LfWebhookDedupStoreFailing", inst)], [G] * 14),
        ("LfWebhookConfigPushRejected", [G] * 10 + [G + ("push_fail",)] + [G] * 3, "13m",
         [_expected("LfWebhookConfigPushRejected", inst)], [G] * 14),
        ("LfWebhookVmCrashed", [G] * 10 + [("crash",), ("vm_down",), ("reloaded",)] + [G] * 2,
         "14m", [_expected("LfWebhookVmCrashed", inst)], [G] * 15),
        ("LfWebhookVmDown", [G] * 10 + [("crash",)] + [("vm_down",)] * 8, "18m",
         [_expected("LfWebhookVmDown", inst)], [G] * 18),
    ]


def _run_promtool(promtool: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------------------------------------


def test_rules_pass_promtool_check(promtool, tmp_path):
    res = _run_promtool(promtool, ["check", "rules", str(RULES)], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout, res.stdout
    # control: promtool does reject a broken expression
    broken = tmp_path / "broken.rules.yaml"
    broken.write_text(RULES.read_text().replace("sum(increase(", "sum(increase((", 1))
    res = _run_promtool(promtool, ["check", "rules", str(broken)], tmp_path)
    assert res.returncode != 0, res.stdout


def test_every_series_the_rules_name_is_in_real_envoy_output(mix):
    final = mix["snaps"]["reloaded"]
    recorded = {r["record"] for g in yaml.safe_load(RULES.read_text())["groups"]
                for r in g["rules"] if "record" in r}
    problems = [p for e in _rule_exprs() for p in
                promutil.check_expr_against_scrape(e, final, recorded=recorded)]
    assert problems == []
    # control: the check catches a misspelt series and a wrong label value
    assert promutil.check_expr_against_scrape(
        "rate(lf_webhook_guard_rejectd[5m])", final)
    assert promutil.check_expr_against_scrape(
        'rate(lf_webhook_guard_rejected{lf_reason="invalid_sig"}[5m])', final)
    assert promutil.check_expr_against_scrape(
        'rate(envoy_extension_config_discovery_http_filter_lf_webhook_guard_config_fails[5m])',
        final)


def test_each_alert_fires_in_one_case_and_stays_silent_in_another(mix, promtool, tmp_path):
    tests = []
    scenarios = _scenarios(mix)
    assert {s[0] for s in scenarios} == set(_rules_by_alert()), "an alert has no test case"
    for alert, firing, at, expected, silent in scenarios:
        tests.append({"name": f"{alert} fires", "interval": "1m",
                      "input_series": _input_series(mix, firing),
                      "alert_rule_test": [{"eval_time": at, "alertname": alert,
                                           "exp_alerts": expected}]})
        tests.append({"name": f"{alert} silent", "interval": "1m",
                      "input_series": _input_series(mix, silent),
                      "alert_rule_test": [{"eval_time": at, "alertname": alert,
                                           "exp_alerts": []}]})
    # recording rules: steady genuine traffic, per key = the stage's real increments per second
    deltas = _deltas(mix["snaps"])
    exp = []
    for stage in G:
        for (name, labels), d in deltas[stage].items():
            if name == "lf_webhook_guard_verified":
                lbl = dict(labels)
                exp.append({"labels": '{lf_key="%s",lf_scheme="%s"}'
                            % (lbl["lf_key"], lbl["lf_scheme"]), "value": d})
    assert len(exp) == 3, exp
    tests.append({"name": "recording: verified rate per key", "interval": "1m",
                  "input_series": _input_series(mix, [G] * 10),
                  # per minute, rounded: promtool compares floats exactly
                  "promql_expr_test": [{"expr": "round(lf_webhook_guard:verified:rate5m * 60)",
                                        "eval_time": "10m", "exp_samples": exp}]})
    path = tmp_path / "lf-webhook-guard.test.yaml"
    path.write_text(yaml.safe_dump({"rule_files": [str(RULES)], "evaluation_interval": "1m",
                                    "tests": tests}, sort_keys=False))
    res = _run_promtool(promtool, ["test", "rules", str(path)], tmp_path)
    assert res.returncode == 0, (res.stdout + res.stderr)[-6000:]
    assert "SUCCESS" in res.stdout, res.stdout
    # control: the same file with one alert's firing expectation removed must fail
    doc = yaml.safe_load(path.read_text())
    doc["tests"][0]["alert_rule_test"][0]["exp_alerts"] = []
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    res = _run_promtool(promtool, ["test", "rules", str(path)], tmp_path)
    assert res.returncode != 0, res.stdout


# ---------------------------------------------------------------------------------------------
# Grafana dashboard
# ---------------------------------------------------------------------------------------------


def _panels(dash: dict) -> list[dict]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows
    return out


def _grafana_to_promql(expr: str) -> str:
    return expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")


def test_dashboard_queries_name_only_series_in_real_envoy_output(mix, promtool, tmp_path):
    dash = json.loads(DASHBOARD.read_text())
    assert dash["title"] and dash.get("uid")
    panels = [p for p in _panels(dash) if p.get("type") != "row"]
    assert len(panels) >= 6
    final = mix["snaps"]["reloaded"]
    exprs = []
    for p in panels:
        targets = p.get("targets", [])
        assert targets, f"panel {p.get('title')!r} has no query"
        for t in targets:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
            expr = _grafana_to_promql(t["expr"])
            problems = promutil.check_expr_against_scrape(expr, final)
            assert problems == [], (p["title"], problems)
            exprs.append(expr)
    # every query is valid PromQL (promtool parses them as recording rules)
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    res = _run_promtool(promtool, ["check", "rules", str(path)], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    # the dashboard shows every series the filter exports (none forgotten)
    lf_names = {n for n in final.names() if n.startswith("lf_webhook_guard_")}
    shown = set().union(*(promutil.metric_names(e) for e in exprs))
    assert lf_names <= shown, f"not on the dashboard: {sorted(lf_names - shown)}"
