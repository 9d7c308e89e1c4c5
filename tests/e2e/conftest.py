"""Shared fixtures for the real-Envoy end-to-end tests, grouped by subject in the folders beside
this file; the helpers they share (harness, independent signers, request builders) are in lib/,
which this file puts on sys.path for every folder.

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

E2E = Path(__file__).resolve().parent
sys.path.insert(0, str(E2E / "lib"))

import harness  # noqa: E402
from e2eutil import running_envoy  # noqa: E402


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
    with running_envoy(backend_server, envoy_bin, wasm_path, envoy_yaml) as env:
        yield env


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


# ---------------------------------------------------------------------------------------------
# Version x mode matrix (`make e2e-matrix`): the full suite runs on the newest Envoy in both hold
# and buffer mode; the oldest Envoy runs this representative subset (`-m matrix`) in both modes.
# Tests that pin their own Envoy YAML (independent of LF_E2E_ENVOY_YAML) are marked `pins_yaml`
# so that the buffer-mode cells can deselect them (they already ran in the hold-mode cell).
# Patterns are `<folder>/<file>::<test id>` relative to this directory (fnmatch, `[` literal).
# ---------------------------------------------------------------------------------------------

MATRIX_SUBSET = [
    # a panicking VM fails closed (503, zero upstream bytes) with a critical log line
    "ops/test_crash.py::test_panic_logs_critical_and_envoy_fails_closed",
    # genuine JSON / form, fast and slow, byte-for-byte; chunked; x-lf-verified replaced
    "signing/test_filter_md5.py::test_genuine_request_is_forwarded_verbatim[*]",
    "signing/test_filter_md5.py::test_genuine_chunked_request_is_forwarded[*]",
    "signing/test_filter_md5.py::test_client_x_lf_verified_is_replaced_on_protected_route[*]",
    # forged / tampered / unsigned / head-level rejections, fast and slow, zero bytes upstream
    "signing/test_filter_md5.py::test_rejection_puts_zero_bytes_upstream[no-signature-json-*]",
    "signing/test_filter_md5.py::test_rejection_puts_zero_bytes_upstream[no-signature-form-*]",
    "signing/test_filter_md5.py::test_rejection_puts_zero_bytes_upstream[wrong-secret-*]",
    "signing/test_filter_md5.py::test_rejection_puts_zero_bytes_upstream[tampered-body-one-byte-*]",
    "signing/test_filter_md5.py::test_rejection_puts_zero_bytes_upstream[signed-form-tampered-*]",
    "signing/test_filter_md5.py::test_rejection_puts_zero_bytes_upstream[get-*]",
    "signing/test_filter_md5.py::test_rejection_puts_zero_bytes_upstream[text-plain-*]",
    "signing/test_filter_md5.py::test_rejection_puts_zero_bytes_upstream[malformed-json-*]",
    "signing/test_filter_md5.py::test_rejection_puts_zero_bytes_upstream[content-length-over-limit-*]",
    "signing/test_filter_md5.py::test_rejection_puts_zero_bytes_upstream[chunked-over-limit-*]",
    # unprotected routes untouched; the VM survives; secrets stay out of the log
    "signing/test_filter_md5.py::test_unprotected_route_passes_untouched[*]",
    "signing/test_filter_md5.py::test_vm_still_alive_after_the_whole_module",
    "signing/test_filter_md5.py::test_secret_never_in_envoy_log",
    # a bad config refuses to start (a few kinds), a good one starts
    "config/test_bad_config.py::test_envoy_refuses_bad_plugin_config[secret-env-unset]",
    "config/test_bad_config.py::test_envoy_refuses_bad_plugin_config[invalid-json]",
    "config/test_bad_config.py::test_envoy_refuses_bad_plugin_config[unknown-top-level-field]",
    "config/test_bad_config.py::test_good_custom_config_starts",
    # hostile input: request smuggling, HTTP framing and h2c depend on Envoy's codecs
    "hostile/test_hostile.py::test_content_length_shorter_than_sent_smuggles_nothing",
    "hostile/test_hostile.py::test_smuggling_framing_rejected_by_envoy[*]",
    "hostile/test_hostile.py::test_h2_genuine_is_forwarded_byte_for_byte[*-small-frames]",
    "hostile/test_hostile.py::test_h2_stream_reset_halfway_puts_zero_bytes_upstream[*]",
    # deployment features that depend on the Envoy version
    "config/test_per_route.py::*",
    "config/test_hold_watchdog.py::*",
    "deploy/test_deploy_files.py::test_envoy_validates_shipped_config[*]",
    "deploy/test_deploy_files.py::test_istio_filter_chain_in_real_envoy",
]
PINS_YAML = ["config/test_hold_watchdog.py::*", "deploy/test_deploy_files.py::*",
             "fleet/test_fleet.py::*", "fleet/test_fleet_store.py::*"]
# Tests asserting what only hold mode can do: name one of several md5 keys in x-lf-verified
# (buffer mode sets the header before the body says which key matched; docs/reference.md, "The x-lf-verified header").
# The buffer-mode cells deselect them; ops/test_shadow.py adapts itself to the mode instead.
HOLD_SEMANTICS = [
    "signing/test_keys.py::test_legacy_signed_with_second_key_names_it",
    "signing/test_keys.py::test_rotation_old_new_unknown",
    "signing/test_keys.py::test_partner_keys_accept_their_own_partner",
    "signing/test_keys.py::test_debug_workload_leaks_no_secret",
    "ops/test_metrics.py::test_counters_match_a_scripted_mix",
]


def pytest_configure(config):
    config.addinivalue_line("markers", "matrix: representative subset for the Envoy version matrix")
    config.addinivalue_line("markers", "pins_yaml: ignores LF_E2E_ENVOY_YAML (runs its own config)")
    config.addinivalue_line("markers", "hold_semantics: asserts hold-mode-only x-lf-verified values")
    config.addinivalue_line("markers", "parsers: cross-runtime parser differential "
                            "(differential/test_parsers.py): runs once, in `make e2e`; the matrix "
                            "cells deselect it")
    config.addinivalue_line(
        "markers", "frameworks: real-framework differential (differential/test_frameworks.py), "
        "runs once"
    )


def _key(item) -> str:
    """`<folder>/<file>::<test id>`, relative to this directory."""
    return f"{Path(str(item.fspath)).resolve().relative_to(E2E).as_posix()}::{item.name}"


def pytest_collection_modifyitems(config, items):
    from fnmatch import fnmatchcase

    for item in items:
        key = _key(item)

        def match(pat: str) -> bool:
            return fnmatchcase(key, pat.replace("[", "[[]"))  # "[" is literal in node ids

        if any(match(pat) for pat in MATRIX_SUBSET):
            item.add_marker(pytest.mark.matrix)
        if any(match(pat) for pat in PINS_YAML):
            item.add_marker(pytest.mark.pins_yaml)
        if any(match(pat) for pat in HOLD_SEMANTICS):
            item.add_marker(pytest.mark.hold_semantics)

    # A moved or renamed test must not silently drop out of the matrix subset: every pattern
    # names an existing file, and matches a test whenever that file is collected.
    for pat in MATRIX_SUBSET + PINS_YAML + HOLD_SEMANTICS:
        if not (E2E / pat.split("::")[0]).is_file():
            raise pytest.UsageError(f"conftest pattern names no file under tests/e2e: {pat}")
    keys = [_key(i) for i in items]
    files = {k.split("::")[0] for k in keys}
    for pat in MATRIX_SUBSET + HOLD_SEMANTICS:
        if pat.split("::")[0] in files and not any(
            fnmatchcase(k, pat.replace("[", "[[]")) for k in keys
        ) and not config.getoption("keyword") and not config.getoption("deselect"):
            raise pytest.UsageError(f"conftest MATRIX_SUBSET pattern matches no test: {pat}")
