"""Envoy with the Wasm filter delivered by ECDS from a watched file (envoy/envoy-dynamic.yaml).

`DynamicEnvoy` is a `harness.Envoy` whose temp dir also holds the ECDS resource file
(`<workdir>/ecds/lf-webhook-guard.yaml`, made from the shipped envoy/ecds/lf-webhook-guard.yaml with
the wasm path and, optionally, the plugin JSON or the Wasm config replaced). The bootstrap's
`config_discovery` is pointed at that file and its directory. `push()` replaces the resource the
way an operator should: write a temp file in the watched directory, then rename it over the
resource (one inotify move event, never a half-written file).
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Callable

import yaml

import harness

DYNAMIC_YAML = harness.REPO / "envoy" / "envoy-dynamic.yaml"
ECDS_RESOURCE = harness.REPO / "envoy" / "ecds" / "lf-webhook-guard.yaml"
FILTER_NAME = "lf_webhook_guard"
# Envoy's ECDS counters for the filter (measured on 1.40.0: stat prefix `http_filter.` + name).
ECDS_STAT = f"extension_config_discovery.http_filter.{FILTER_NAME}."
CONFIG_FAILURES = "wasmcustom.lf_webhook_guard.config_failures"


def ecds_entries(cfg: dict) -> list[dict]:
    """The http_filters entries of a bootstrap that use config_discovery."""
    return [
        f
        for hcm in harness._http_connection_managers(cfg)
        for f in hcm.get("http_filters", [])
        if "config_discovery" in f
    ]


def resource_typed_config(path: Path | str = ECDS_RESOURCE) -> dict:
    """The Wasm filter config (TypedExtensionConfig.typed_config) of a resource file."""
    doc = yaml.safe_load(Path(path).read_text())
    (res,) = doc["resources"]
    return res["typed_config"]


def make_resource(
    typed_config: dict,
    *,
    wasm_path: str | None = None,
    plugin_config: dict | str | None = None,
) -> dict:
    """A resource-file document around `typed_config`, with the wasm path / plugin JSON replaced."""
    tc = copy.deepcopy(typed_config)
    wasm_cfg = tc["config"]
    if wasm_path is not None:
        wasm_cfg["vm_config"]["code"]["local"]["filename"] = wasm_path
    if plugin_config is not None:
        value = plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config)
        wasm_cfg["configuration"]["value"] = value
    return {
        "resources": [
            {
                "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
                "name": FILTER_NAME,
                "typed_config": tc,
            }
        ]
    }


class DynamicEnvoy(harness.Envoy):
    """`harness.Envoy` for an ECDS bootstrap (default envoy/envoy-dynamic.yaml).

    `resource_path` is the shipped resource file the first version is made from; `plugin_config`
    replaces its plugin JSON, `wasm_config` (a function of the Wasm `config` dict, changing it in
    place) adjusts anything else (e.g. the failure policy). Everything else is `harness.Envoy`.
    """

    def __init__(
        self,
        backend_port: int,
        *,
        yaml_path: Path | str = DYNAMIC_YAML,
        resource_path: Path | str = ECDS_RESOURCE,
        wasm_path: str | None = None,
        plugin_config: dict | str | None = None,
        wasm_config: Callable[[dict], None] | None = None,
        **kw,
    ):
        # The bootstrap has no inline Wasm filter: the harness patches its ports and backend
        # (without_filter only drops inline Wasm filters; the config_discovery entry stays).
        super().__init__(backend_port, yaml_path=yaml_path, without_filter=True, **kw)
        self.wasm_path = wasm_path or harness.find_wasm()
        self.initial_plugin_config = plugin_config
        self.wasm_config = wasm_config
        self.typed_config = resource_typed_config(resource_path)
        if wasm_config is not None:
            wasm_config(self.typed_config["config"])
        self.ecds_dir = self.workdir / "ecds"
        self.resource_file = self.ecds_dir / "lf-webhook-guard.yaml"
        self._pushes = 0

    def write_config(self) -> dict:
        cfg = yaml.safe_load(self.yaml_path.read_text())
        cfg = harness.patch_config(
            cfg,
            listen_port=self.listen_port,
            admin_port=self.admin_port,
            backend_port=self.backend_port,
            wasm_path=None,
            without_filter=True,
        )
        entries = ecds_entries(cfg)
        if len(entries) != 1:
            raise harness.HarnessError(f"expected one config_discovery filter, found {entries}")
        source = entries[0]["config_discovery"]["config_source"]["path_config_source"]
        source["path"] = str(self.resource_file)
        source["watched_directory"] = {"path": str(self.ecds_dir)}
        self.ecds_dir.mkdir(exist_ok=True)
        self.write_resource(
            make_resource(self.typed_config, wasm_path=self.wasm_path,
                          plugin_config=self.initial_plugin_config)
        )
        self.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return cfg

    # -- pushes ---------------------------------------------------------------------------

    def write_resource(self, doc: dict | str) -> None:
        """Atomically replace the resource file: temp file in the watched dir, then rename."""
        text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
        self._pushes += 1
        tmp = self.ecds_dir / f".push-{self._pushes}.tmp"
        tmp.write_text(text)
        os.rename(tmp, self.resource_file)

    def push(self, plugin_config: dict | str | None = None, *,
             wasm_config: Callable[[dict], None] | None = None, raw: str | None = None) -> None:
        """Push a new version: another plugin JSON and/or Wasm config change, or a raw file."""
        if raw is not None:
            self.write_resource(raw)
            return
        tc = copy.deepcopy(self.typed_config)
        if wasm_config is not None:
            wasm_config(tc["config"])
        self.write_resource(make_resource(tc, wasm_path=self.wasm_path,
                                          plugin_config=plugin_config))

    def ecds_stats(self) -> dict[str, int]:
        """Envoy's ECDS counters for the filter, without the prefix (config_reload, config_fail)."""
        return {k[len(ECDS_STAT):]: v for k, v in self.stats().items()
                if k.startswith(ECDS_STAT) and isinstance(v, int)}

    def wait_stat(self, name: str, predicate: Callable[[int], bool], timeout: float = 10.0) -> int:
        """Poll /stats until predicate(value of `name`, 0 if absent) holds; returns the value
        (the last one seen on timeout: the caller asserts)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.stats().get(name, 0)
            if not isinstance(value, int):
                value = 0
            if predicate(value) or time.monotonic() > deadline:
                return value
            time.sleep(0.05)
