#!/usr/bin/env python3
"""Regenerate envoy/envoy-dynamic.yaml and envoy/ecds/lf-webhook-guard.yaml from envoy/envoy.yaml.

    python3 envoy/gen-dynamic.py           # rewrite both files
    python3 envoy/gen-dynamic.py --check   # exit 1 if they differ from what envoy.yaml gives

The dynamic bootstrap is envoy/envoy.yaml with the inline Wasm filter entry (`- name:
lf_webhook_guard` + its typed_config) replaced by a config_discovery entry and a `node` added;
the resource file carries that typed_config unchanged. Text-based (comments are kept), so it
expects envoy.yaml's layout: the filter entry at 10 spaces under http_filters, followed by the
router entry. tests/e2e/ops/test_ecds.py checks the result semantically.
"""

from __future__ import annotations

import sys
from pathlib import Path

ENVOY = Path(__file__).resolve().parent
STATIC = ENVOY / "envoy.yaml"
DYNAMIC = ENVOY / "envoy-dynamic.yaml"
RESOURCE = ENVOY / "ecds" / "lf-webhook-guard.yaml"

HEAD = """\
# lf-webhook-guard demo with the Wasm filter delivered by ECDS (extension config discovery), the
# way Istio delivers Wasm filters: the HTTP filter entry below names a discovered resource, and
# Envoy reads it from envoy/ecds/lf-webhook-guard.yaml, watching envoy/ecds/ for an atomic rename.
# Same demo contract as envoy/envoy.yaml: listener 127.0.0.1:10000, admin 127.0.0.1:9901, backend
# 127.0.0.1:8080, hold mode, the same plugin JSON (in the resource file; checked by the tests).
# GENERATED from envoy/envoy.yaml by envoy/gen-dynamic.py: change envoy.yaml, then rerun it.
# Run from the repository root (`make run ENVOY_CONFIG=envoy/envoy-dynamic.yaml`): the resource
# path, its watched directory and the .wasm path in it are relative to it.
# To change the filter's configuration while Envoy runs, edit a copy and rename it over the file
# (docs/operations.md); a push that fails is refused and the previous configuration keeps serving.
# ECDS needs a node identity in the bootstrap (Envoy refuses to start without id and cluster).
node:
  id: lf-webhook-guard-demo
  cluster: lf-webhook-guard
"""

ECDS_ENTRY = """\
          # The Wasm filter, discovered: its typed_config (the same as envoy/envoy.yaml's) is the
          # resource `lf_webhook_guard` in envoy/ecds/lf-webhook-guard.yaml. Without a valid
          # resource the filter chain answers 500 (no default config: never forward unverified).
          - name: lf_webhook_guard
            config_discovery:
              config_source:
                path_config_source:
                  path: envoy/ecds/lf-webhook-guard.yaml
                  # Watch the directory, not the file: a rename into it is one atomic update.
                  watched_directory:
                    path: envoy/ecds
              type_urls:
              - type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
"""

RESOURCE_HEAD = """\
# The lf-webhook-guard Wasm filter for envoy/envoy-dynamic.yaml, delivered by ECDS from this file.
# GENERATED from envoy/envoy.yaml by envoy/gen-dynamic.py (typed_config = its Wasm filter).
# Envoy watches envoy/ecds/ and reloads this file when a file is renamed into the directory.
# Change it atomically: write the new version next to it and rename it over this one, e.g.
#   cp envoy/ecds/lf-webhook-guard.yaml envoy/ecds/.next.yaml && $EDITOR envoy/ecds/.next.yaml
#   mv envoy/ecds/.next.yaml envoy/ecds/lf-webhook-guard.yaml
# (an in-place edit can be read half-written). A version Envoy or the plugin refuses (bad YAML,
# unknown field, plugin JSON error, missing secret variable) is rejected, logged and counted
# (extension_config_discovery.http_filter.lf_webhook_guard.config_fail, and usually
# lf_webhook_guard.config_failures), and the previous version keeps serving. See
# docs/operations.md. Secrets are never in this file: the plugin reads them from Envoy's
# environment (vm_config.environment_variables.host_env_keys).
resources:
- "@type": type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig
  name: lf_webhook_guard
  typed_config:
"""


def generate() -> tuple[str, str]:
    lines = STATIC.read_text().splitlines(keepends=True)
    # drop envoy.yaml's own header comment (up to the first non-comment line, but keep the
    # comment block that belongs to stats_config)
    i = 0
    while i < len(lines) and lines[i].startswith("#") and not lines[i].startswith("# Custom counters"):
        i += 1
    body = "".join(lines[i:])
    entry = "          - name: lf_webhook_guard\n"
    start = body.index(entry)
    end = body.index("          - name: envoy.filters.http.router\n", start)
    tc_start = body.index("            typed_config:\n", start)
    if tc_start > end:
        raise SystemExit("envoy.yaml: the lf_webhook_guard entry has no typed_config")
    out = []
    for line in body[tc_start:end].splitlines(keepends=True)[1:]:
        if line.strip() and not line.startswith(" " * 14):
            raise SystemExit(f"envoy.yaml: unexpected indentation in the Wasm filter: {line!r}")
        out.append("    " + line[14:] if line.strip() else line)
    # comment lines right before the entry (in envoy.yaml) stay with it
    dynamic = HEAD + body[:start] + ECDS_ENTRY + body[end:]
    return dynamic, RESOURCE_HEAD + "".join(out)


def main() -> int:
    dynamic, resource = generate()
    if "--check" in sys.argv[1:]:
        stale = [p.name for p, text in ((DYNAMIC, dynamic), (RESOURCE, resource))
                 if not p.exists() or p.read_text() != text]
        if stale:
            print(f"out of date with envoy.yaml: {stale}; run python3 envoy/gen-dynamic.py")
            return 1
        return 0
    DYNAMIC.write_text(dynamic)
    RESOURCE.write_text(resource)
    print(f"wrote {DYNAMIC.relative_to(ENVOY.parent)} and {RESOURCE.relative_to(ENVOY.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
