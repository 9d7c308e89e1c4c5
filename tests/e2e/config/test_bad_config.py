"""A bad plugin config makes Envoy refuse to start, naming the field, never the secret."""

from __future__ import annotations

import json

import pytest

from e2eutil import SECRET

INLINE = "Inline-Secret-Value=&42"
ROUTE = {"name": "lf", "path_prefix": "/linksfield/", "scheme": "md5"}
ENV_KEY = {"id": "demo", "secret_env": "LF_WEBHOOK_SECRET"}
INLINE_KEY = {"id": "inl", "secret": INLINE}

BAD = [
    # (id, plugin config (dict or raw string), field the log must name, secret env value)
    ("route-both-paths",
     {"keys": [ENV_KEY, INLINE_KEY],
      "routes": [{"path_exact": "/a", "path_prefix": "/b", "scheme": "md5"}]},
     "routes[0]", SECRET),
    ("route-no-path", {"keys": [INLINE_KEY], "routes": [{"name": "x"}]}, "routes[0]", SECRET),
    ("second-route-bad-scheme",
     {"keys": [INLINE_KEY], "routes": [ROUTE, {"path_prefix": "/c/", "scheme": "sha1"}]},
     "routes[1].scheme", SECRET),
    ("secret-env-unset",
     {"keys": [{"id": "demo", "secret_env": "LF_NOT_SET_ANYWHERE"}], "routes": [ROUTE]},
     "keys[0].secret_env", SECRET),
    ("shipped-env-var-missing",
     {"keys": [ENV_KEY], "routes": [ROUTE]}, "keys[0].secret_env", None),
    ("key-both-secret-and-env",
     {"keys": [INLINE_KEY, {"id": "k2", "secret": INLINE + "2", "secret_env": "LF_WEBHOOK_SECRET"}],
      "routes": [ROUTE]},
     "keys[1]", SECRET),
    ("unknown-top-level-field",
     {"keys": [INLINE_KEY], "routes": [ROUTE], "max_body_byte": 10}, "max_body_byte", SECRET),
    ("unknown-route-field",
     {"keys": [INLINE_KEY], "routes": [dict(ROUTE, pathprefix="/x")]}, "pathprefix", SECRET),
    ("bad-empty-values",
     {"keys": [INLINE_KEY], "routes": [ROUTE], "md5": {"empty_values": "drop"}}, "drop", SECRET),
    ("invalid-json", '{"keys": [{"id": "inl", "secret": "' + INLINE + '"}], "routes": [',
     None, SECRET),
    ("empty-config", "", None, SECRET),
]


@pytest.mark.parametrize("cfg,field,secret", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_envoy_refuses_bad_plugin_config(start_envoy, backend, cfg, field, secret):
    envoy = start_envoy(plugin_config=cfg, secret=secret, ready_timeout=15)
    rc = envoy.expect_start_failure()
    assert rc != 0
    log = envoy.log_text()
    assert "lf_webhook_guard" in log or "wasm" in log.lower(), log[-2000:]
    if field is not None:
        assert field in log, f"log does not name {field!r}:\n{envoy.log_tail()}"
    assert INLINE not in log
    assert json.dumps(INLINE)[1:-1] not in log
    if secret:
        assert secret not in log
    assert backend.total_bytes() == 0


def test_good_custom_config_starts(start_envoy, backend):
    """Control for the test above: the same harness path with a valid config does start."""
    envoy = start_envoy(plugin_config={"keys": [ENV_KEY, INLINE_KEY], "routes": [ROUTE]})
    envoy.start()
    assert envoy.running
