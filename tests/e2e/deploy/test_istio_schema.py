"""Every manifest in deploy/istio is checked against Istio's and Kubernetes' published
schemas (the generated pydantic models of PyPI `cloudcoil-models-istio==1.24.2.1` and
`cloudcoil-models-kubernetes==1.32.1.3`, tests/e2e/requirements.txt), with unknown fields
forbidden at every level: the models themselves ignore unknown fields, so the check also requires
that the validated object, dumped back, still has every field of the manifest. A misspelt field
or a wrong enum value must fail the check (proved below for each manifest).

What the schemas cannot see, free-form fields (WasmPlugin pluginConfig, EnvoyFilter patch value),
is checked by test_deploy_files.py against the Envoy configs the e2e suite runs in real Envoy.
Runs once (marked pins_yaml: independent of the Envoy config under test).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

import harness

pytestmark = pytest.mark.pins_yaml

ISTIO_DIR = harness.REPO / "deploy" / "istio"
MANIFESTS = sorted(ISTIO_DIR.glob("*.yaml"))
INSTALL = "run `make envoy` (installs tests/e2e/requirements.txt into .venv)"

try:
    import pydantic
    from cloudcoil.models.istio.extensions import v1alpha1 as istio_ext
    from cloudcoil.models.istio.networking import v1alpha3 as istio_net
    from cloudcoil.models.kubernetes.core import v1 as core_v1

    IMPORT_ERROR = None
except ImportError as e:  # a missing package must fail the tests, never skip them
    IMPORT_ERROR = e


@pytest.fixture(scope="module")
def models() -> dict:
    if IMPORT_ERROR is not None:
        pytest.fail(f"schema packages missing ({IMPORT_ERROR}): {INSTALL}", pytrace=False)
    return {
        ("extensions.istio.io/v1alpha1", "WasmPlugin"): istio_ext.WasmPlugin,
        ("networking.istio.io/v1alpha3", "EnvoyFilter"): istio_net.EnvoyFilter,
        ("v1", "Secret"): core_v1.Secret,
    }


def _unknown_fields(src, dumped, path: str = "") -> list[str]:
    """Paths present in the manifest but not in the model's dump: fields the schema lacks."""
    if isinstance(src, dict):
        if not isinstance(dumped, dict):
            return [path or "."]
        out = []
        for key, value in src.items():
            if key not in dumped:
                out.append(f"{path}.{key}")
            else:
                out += _unknown_fields(value, dumped[key], f"{path}.{key}")
        return out
    if isinstance(src, list):
        if not isinstance(dumped, list) or len(dumped) != len(src):
            return [path]
        return [p for i, (a, b) in enumerate(zip(src, dumped)) for p in _unknown_fields(a, b, f"{path}[{i}]")]
    return []


def check(models: dict, doc: dict) -> list[str]:
    """Problems with one manifest document ([] if it matches its schema exactly)."""
    if "apiVersion" not in doc and "kind" not in doc:
        # gateway-env-patch.yaml: a strategic merge patch of the gateway Deployment; its pod
        # template part is checked as a PodTemplateSpec.
        if set(doc) != {"spec"} or set(doc["spec"]) != {"template"}:
            return [f"patch has fields other than spec.template: {sorted(doc)}"]
        model, body, prefix = core_v1.PodTemplateSpec, doc["spec"]["template"], ".spec.template"
    else:
        model = models.get((doc.get("apiVersion"), doc.get("kind")))
        if model is None:
            return [f"no schema for {doc.get('apiVersion')} {doc.get('kind')}: add one to this test"]
        body, prefix = doc, ""
    try:
        obj = model.model_validate(body)
    except pydantic.ValidationError as e:
        return [f"schema: {err['loc']}: {err['msg']}" for err in e.errors()]
    dumped = obj.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return [f"unknown field {prefix}{p}" for p in _unknown_fields(body, dumped)]


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_every_istio_manifest_is_checked():
    names = {p.name for p in MANIFESTS}
    assert {"wasmplugin.yaml", "envoyfilter-buffer.yaml", "secret.yaml",
            "gateway-env-patch.yaml"} <= names, names
    assert set(p.name for p in ISTIO_DIR.iterdir()) - names == {"Dockerfile"}, \
        "a new non-YAML file in deploy/istio: check it here"


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_manifest_matches_the_published_schema(models, path):
    docs = _docs(path)
    assert docs, path
    for doc in docs:
        assert check(models, doc) == [], path.name


def _set(doc: dict, path: list, value=None, *, rename: str | None = None) -> dict:
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    if rename is not None:
        node[rename] = node.pop(path[-1])
    else:
        node[path[-1]] = value
    return doc


MUTATIONS = [
    # (manifest, path to a field, rename it to / or set a bad value, expected text in the problem)
    ("wasmplugin.yaml", ["spec", "failStrategy"], "failStrategyy", None, "failStrategyy"),
    ("wasmplugin.yaml", ["spec", "vmConfig", "env", 0, "valueFrom"], "valuefrom", None, "valuefrom"),
    ("wasmplugin.yaml", ["spec", "phase"], None, "AUTH", "phase"),
    ("wasmplugin.yaml", ["metadata", "namespace"], "namespce", None, "namespce"),
    ("envoyfilter-buffer.yaml", ["spec", "configPatches", 0, "patch", "operation"], "operaton",
     None, "operaton"),
    ("envoyfilter-buffer.yaml", ["spec", "workloadSelector"], "workloadselector", None,
     "workloadselector"),
    ("envoyfilter-buffer.yaml", ["spec", "configPatches", 0, "applyTo"], None, "HTTP_FILTERS",
     "applyTo"),
    ("secret.yaml", ["stringData"], "stringdata", None, "stringdata"),
    ("gateway-env-patch.yaml", ["spec", "template", "spec", "containers", 0, "env", 0,
                                "valueFrom", "secretKeyRef"], "secretRef", None, "secretRef"),
]


@pytest.mark.parametrize("name,path,rename,value,needle", MUTATIONS,
                         ids=[f"{m[0]}:{m[2] or m[3]}" for m in MUTATIONS])
def test_misspelt_field_or_bad_value_fails_the_check(models, name, path, rename, value, needle):
    (doc,) = _docs(ISTIO_DIR / name)
    assert check(models, doc) == []  # the shipped one passes
    bad = _set(doc, path, value, rename=rename)
    problems = check(models, bad)
    assert problems, f"{name}: {path} -> {rename or value} was not caught"
    assert any(needle in p for p in problems), problems
