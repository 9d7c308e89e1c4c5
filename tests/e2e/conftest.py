"""Shared fixtures for the real-Envoy end-to-end tests.

Environment knobs:
- ENVOY_BIN: Envoy binary (default <repo>/.venv/bin/envoy, then `envoy` on PATH).
- LF_WASM: filter module (default target/wasm32-wasip1/release/lf_webhook_guard.wasm).
- LF_E2E_ENVOY_YAML: shipped config under test (default envoy/envoy.yaml; e.g.
  envoy/envoy-buffered.yaml).
Missing Envoy or wasm makes the tests FAIL, never skip.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


def _envoy_yaml() -> Path:
    raw = os.environ.get("LF_E2E_ENVOY_YAML")
    if not raw:
        return harness.DEFAULT_YAML
    p = Path(raw)
    return p if p.is_absolute() else harness.REPO / p


@pytest.fixture(scope="session")
def envoy_bin() -> str:
    try:
        return harness.find_envoy()
    except harness.HarnessError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def wasm_path() -> str:
    try:
        return harness.find_wasm()
    except harness.HarnessError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def envoy_yaml() -> Path:
    return _envoy_yaml()


@pytest.fixture(scope="session")
def backend_server():
    with harness.RecordingBackend() as b:
        yield b


@pytest.fixture
def backend(backend_server):
    """The session backend with a fresh recording for this test."""
    backend_server.reset()
    yield backend_server


@pytest.fixture(scope="module")
def guard(envoy_bin, wasm_path, envoy_yaml, backend_server):
    """Envoy running the shipped config unchanged (apart from ports and the wasm path)."""
    env = harness.Envoy(
        backend_server.port, yaml_path=envoy_yaml, envoy_bin=envoy_bin, wasm_path=wasm_path
    )
    try:
        env.start()
    except harness.HarnessError as e:
        env.close()
        pytest.fail(str(e), pytrace=False)
    yield env
    env.close()


@pytest.fixture
def start_envoy(envoy_bin, envoy_yaml, backend_server):
    """Factory: start_envoy(**Envoy kwargs) -> a not-yet-started Envoy, stopped at teardown."""
    made: list[harness.Envoy] = []

    def make(**kw) -> harness.Envoy:
        kw.setdefault("yaml_path", envoy_yaml)
        kw.setdefault("envoy_bin", envoy_bin)
        if not kw.get("without_filter"):
            try:
                kw.setdefault("wasm_path", harness.find_wasm())
            except harness.HarnessError as e:
                pytest.fail(str(e), pytrace=False)
        e = harness.Envoy(backend_server.port, **kw)
        made.append(e)
        return e

    yield make
    for e in made:
        e.close()
