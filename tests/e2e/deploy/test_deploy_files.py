"""Every deployment file the repo ships is checked: each Envoy config passes
`envoy --mode validate` (with the built .wasm and the secret env set), the docker compose file
mounts what exists or `make build` produces, and the Istio manifests carry exactly the plugin JSON
the Envoy tests use (plus "hold_headers": false) and the buffer filter envoy-buffered.yaml uses.
The Istio buffer-mode filter chain is also run in real Envoy."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

import harness
from e2eutil import JSON, SAMPLE_JSON, assert_rejection, sig_json, wait_no_upstream_bytes
from harness import send_request

ENVOY_DIR = harness.REPO / "envoy"
ISTIO_DIR = harness.REPO / "deploy" / "istio"
PLUGIN_JSON = json.loads((ENVOY_DIR / "lf-webhook-guard.json").read_text())
WASM_BUILD_OUTPUT = "target/wasm32-wasip1/release/lf_webhook_guard.wasm"  # Makefile $(WASM)
ENVOY_CONFIGS = sorted(p for p in ENVOY_DIR.glob("*.yaml")
                       if harness.wasm_filters(yaml.safe_load(p.read_text())))
BUFFER = "envoy.filters.http.buffer"
ROUTER = "envoy.filters.http.router"


def _env_names(plugin: dict) -> set[str]:
    return {v for k in plugin.get("keys", []) for f, v in k.items() if f.endswith("_env")}


def _validate(envoy_bin: str, cfg: dict, tmp_path: Path, env: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "validate.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    full_env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    return subprocess.run(
        [envoy_bin, "--mode", "validate", "-c", str(path), "--use-dynamic-base-id",
         "--log-level", "info"],
        cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=120,
    )


def _with_wasm(yaml_path: Path, wasm_path: str) -> dict:
    cfg = yaml.safe_load(yaml_path.read_text())
    for f in harness.wasm_filters(cfg):
        f["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = wasm_path
    return cfg


SECRETS = {harness.SECRET_ENV: harness.DEFAULT_SECRET,
           harness.CUBE_KEY_ID_ENV: harness.DEFAULT_CUBE_KEY_ID,
           harness.CUBE_KEY_ENV: harness.DEFAULT_CUBE_KEY}


# ---------------------------------------------------------------------------------------------
# envoy --mode validate
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("yaml_path", ENVOY_CONFIGS, ids=[p.name for p in ENVOY_CONFIGS])
def test_envoy_validates_shipped_config(envoy_bin, wasm_path, tmp_path, yaml_path):
    res = _validate(envoy_bin, _with_wasm(yaml_path, wasm_path), tmp_path, SECRETS)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "configuration '" in out and "' OK" in out, out[-3000:]


def test_validate_mode_runs_the_plugin(envoy_bin, wasm_path, tmp_path):
    """Control: validate really configures the plugin (a missing secret env var fails it)."""
    res = _validate(envoy_bin, _with_wasm(harness.DEFAULT_YAML, wasm_path), tmp_path,
                    {**SECRETS, harness.SECRET_ENV: None})
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-3000:]
    assert "keys[0].secret_env" in out, out[-3000:]


# ---------------------------------------------------------------------------------------------
# docker compose
# ---------------------------------------------------------------------------------------------

COMPOSE = ENVOY_DIR / "docker-compose.yaml"


def _mounts(service: dict) -> dict[str, Path]:
    """container path -> host path (resolved relative to the compose file)."""
    out = {}
    for v in service.get("volumes", []):
        host, container, *_ = v.split(":")
        out[container] = (COMPOSE.parent / host).resolve()
    return out


def test_compose_file_mounts_existing_files_and_build_outputs(wasm_path):
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    assert set(services) == {"envoy", "backend"}
    envoy, backend = services["envoy"], services["backend"]
    assert envoy["image"].startswith("envoyproxy/envoy:v1.") and "latest" not in envoy["image"]
    for svc in (envoy, backend):
        for container, host in _mounts(svc).items():
            rel = host.relative_to(harness.REPO)  # never outside the repo
            if rel.as_posix() == WASM_BUILD_OUTPUT:
                assert Path(wasm_path) == host, "compose mounts another wasm than make build makes"
            else:
                assert host.is_file(), f"{COMPOSE.name} mounts missing {rel} at {container}"
    mounts = _mounts(envoy)
    cmd = envoy["command"]
    config_in_container = cmd[cmd.index("-c") + 1]
    assert mounts[config_in_container] == ENVOY_DIR / "envoy-compose.yaml"
    cfg = yaml.safe_load((ENVOY_DIR / "envoy-compose.yaml").read_text())
    (wasm,) = harness.wasm_filters(cfg)
    wasm_cfg = wasm["typed_config"]["config"]
    wasm_file = wasm_cfg["vm_config"]["code"]["local"]["filename"]
    assert mounts[wasm_file].relative_to(harness.REPO).as_posix() == WASM_BUILD_OUTPUT
    # the backend runs the repo's demo backend, reachable as service `backend`
    assert _mounts(backend)[backend["command"][-1]] == ENVOY_DIR / "demo_backend.py"
    assert backend["environment"]["DEMO_BACKEND_HOST"] == "0.0.0.0"
    (cluster,) = cfg["static_resources"]["clusters"]
    sa = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
        "socket_address"]
    assert (sa["address"], sa["port_value"]) == ("backend", int(backend["environment"]["DEMO_BACKEND_PORT"]))
    # the demo contract: 10000 / 9901 on the host's loopback only
    assert sorted(envoy["ports"]) == ["127.0.0.1:10000:10000", "127.0.0.1:9901:9901"]
    assert cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] == 10000
    assert cfg["admin"]["address"]["socket_address"]["port_value"] == 9901
    # every variable the plugin reads is passed to the Envoy container and allowed into the VM
    host_env = set(wasm_cfg["vm_config"]["environment_variables"]["host_env_keys"])
    assert _env_names(PLUGIN_JSON) <= host_env <= set(envoy["environment"])


def test_compose_envoy_config_serves_the_demo(start_envoy, backend):
    """envoy-compose.yaml in real Envoy (addresses patched to loopback): genuine and forged."""
    envoy = start_envoy(yaml_path=ENVOY_DIR / "envoy-compose.yaml")
    envoy.start()
    path = "/linksfield/sms"
    ok = send_request(envoy.listen_port, "POST", path,
                      [("content-type", JSON), ("x-lf-md5", sig_json(SAMPLE_JSON))], SAMPLE_JSON,
                      slow=True)
    assert ok.status == 200, ok.body
    (req,) = backend.wait_requests(1)
    assert req.body == SAMPLE_JSON and req.header("x-lf-verified") == "md5; key=demo"
    backend.reset()
    bad = send_request(envoy.listen_port, "POST", path,
                       [("content-type", JSON), ("x-lf-md5", sig_json(SAMPLE_JSON, "wrong"))],
                       SAMPLE_JSON, slow=True)
    answered = time.monotonic()
    assert_rejection(bad, "invalid_signature")
    wait_no_upstream_bytes(backend, since=answered)


# ---------------------------------------------------------------------------------------------
# Istio
# ---------------------------------------------------------------------------------------------


def _istio(name: str) -> dict:
    docs = [d for d in yaml.safe_load_all((ISTIO_DIR / name).read_text()) if d]
    assert len(docs) == 1, name
    return docs[0]


def test_wasmplugin_carries_the_plugin_json_in_buffer_mode():
    wp = _istio("wasmplugin.yaml")
    assert (wp["apiVersion"], wp["kind"]) == ("extensions.istio.io/v1alpha1", "WasmPlugin")
    spec = wp["spec"]
    assert spec["phase"] == "AUTHN"
    assert spec["failStrategy"] == "FAIL_CLOSE"
    assert spec["url"].startswith("oci://")
    assert spec["pluginConfig"] == {**PLUGIN_JSON, "hold_headers": False}
    env = spec["vmConfig"]["env"]
    assert all(e["valueFrom"] == "HOST" and "value" not in e for e in env)
    assert {e["name"] for e in env} == _env_names(PLUGIN_JSON)


def test_secret_and_gateway_env_patch_feed_the_vm_env():
    wp = _istio("wasmplugin.yaml")
    names = {e["name"] for e in wp["spec"]["vmConfig"]["env"]}
    secret = _istio("secret.yaml")
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["namespace"] == wp["metadata"]["namespace"]
    assert set(secret["stringData"]) == names
    patch = _istio("gateway-env-patch.yaml")
    (proxy,) = [c for c in patch["spec"]["template"]["spec"]["containers"]
                if c["name"] == "istio-proxy"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in proxy["env"]}
    assert set(refs) == names
    for name, ref in refs.items():
        assert ref == {"name": secret["metadata"]["name"], "key": name}


def test_envoyfilter_inserts_the_same_buffer_filter_before_the_router():
    ef = _istio("envoyfilter-buffer.yaml")
    wp = _istio("wasmplugin.yaml")
    assert (ef["apiVersion"], ef["kind"]) == ("networking.istio.io/v1alpha3", "EnvoyFilter")
    assert ef["metadata"]["namespace"] == wp["metadata"]["namespace"]
    assert ef["spec"]["workloadSelector"]["labels"] == wp["spec"]["selector"]["matchLabels"]
    (patch,) = ef["spec"]["configPatches"]
    assert patch["applyTo"] == "HTTP_FILTER"
    fc = patch["match"]["listener"]["filterChain"]["filter"]
    assert fc["name"] == "envoy.filters.network.http_connection_manager"
    assert fc["subFilter"]["name"] == ROUTER
    assert patch["patch"]["operation"] == "INSERT_BEFORE"
    value = patch["patch"]["value"]
    buffered = yaml.safe_load((ENVOY_DIR / "envoy-buffered.yaml").read_text())
    (hcm,) = harness._http_connection_managers(buffered)
    (shipped,) = [f for f in hcm["http_filters"] if f["name"] == BUFFER]
    assert value == shipped
    assert value["typed_config"]["max_request_bytes"] >= PLUGIN_JSON["max_body_bytes"]


def test_oci_image_recipe():
    lines = [ln.strip() for ln in (ISTIO_DIR / "Dockerfile").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines == ["FROM scratch", "COPY lf_webhook_guard.wasm ./plugin.wasm"]
    text = (ISTIO_DIR / "Dockerfile").read_text()
    context = str(Path(WASM_BUILD_OUTPUT).parent)
    assert context in text  # the documented build context is where make build writes the wasm


def _istio_like_envoy_config() -> dict:
    """envoy/envoy.yaml turned into what the Istio manifests produce: the WasmPlugin's
    pluginConfig, no allow_on_headers_stop_iteration, and the EnvoyFilter's patch applied."""
    cfg = yaml.safe_load(harness.DEFAULT_YAML.read_text())
    (wasm,) = harness.wasm_filters(cfg)
    wasm_cfg = wasm["typed_config"]["config"]
    wasm_cfg.pop("allow_on_headers_stop_iteration")
    wasm_cfg["configuration"]["value"] = json.dumps(_istio("wasmplugin.yaml")["spec"]["pluginConfig"])
    (hcm,) = harness._http_connection_managers(cfg)
    (patch,) = _istio("envoyfilter-buffer.yaml")["spec"]["configPatches"]
    names = [f["name"] for f in hcm["http_filters"]]
    hcm["http_filters"].insert(names.index(patch["match"]["listener"]["filterChain"]["filter"][
        "subFilter"]["name"]), copy.deepcopy(patch["patch"]["value"]))
    return cfg


def test_istio_filter_chain_in_real_envoy(start_envoy, backend, tmp_path):
    path = tmp_path / "istio-like.yaml"
    path.write_text(yaml.safe_dump(_istio_like_envoy_config(), sort_keys=False))
    envoy = start_envoy(yaml_path=path)
    envoy.start()
    route = "/linksfield/sms"
    for slow in (False, True):
        backend.reset()
        bad = send_request(envoy.listen_port, "POST", route,
                           [("content-type", JSON), ("x-lf-md5", sig_json(SAMPLE_JSON, "nope"))],
                           SAMPLE_JSON, slow=slow)
        answered = time.monotonic()
        assert_rejection(bad, "invalid_signature")
        wait_no_upstream_bytes(backend, since=answered)
        backend.reset()
        ok = send_request(envoy.listen_port, "POST", route,
                          [("content-type", JSON), ("x-lf-md5", sig_json(SAMPLE_JSON))],
                          SAMPLE_JSON, slow=slow)
        assert ok.status == 200, ok.body
        (req,) = backend.wait_requests(1)
        assert req.body == SAMPLE_JSON and req.header_all("x-lf-verified") == ["md5; key=demo"]
