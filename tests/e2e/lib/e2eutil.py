"""Request builders and assertions shared by the filter tests."""

from __future__ import annotations

import contextlib
import os
import re
import time

import pytest

import harness
import lfsign

SECRET = harness.DEFAULT_SECRET
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
# Seconds (after the reply) to let a leaked byte reach the backend before asserting zero.
GRACE = float(os.environ.get("LF_E2E_GRACE", "0.25"))

# Hold mode (envoy/envoy.yaml) or buffer mode (envoy/envoy-buffered.yaml) under test.
HOLD_HEADERS = harness.holds_headers(harness.yaml_under_test())

# A notification shaped like the provider's captured SMS-uplink callback.
SAMPLE_JSON = (
    b'{"partner_code":"P123456","sim_id":"89860220190123456789","imsi":"4230001234567",'
    b'"message_type":"Text","text_message":"device status: 1234","received_at":"1642385160000"}'
)
SAMPLE_FORM = (
    b"partner_code=P123456&sim_id=89860220190123456789&imsi=4230001234567"
    b"&message_type=Text&text_message=device+status%3A+1234&received_at=1642385160000"
)

CATEGORIES = {
    "missing_signature": 401,
    "invalid_signature": 401,
    "method_not_allowed": 405,
    "unsupported_media_type": 415,
    "malformed_body": 400,
    "body_too_large": 413,
    "partner_not_allowed": 403,
    "stale_notification": 401,
    "non_canonical_path": 400,
    "query_not_allowed": 400,
    "unsupported_encoding": 415,
}


def sig_json(body: bytes, secret: str = SECRET, **kw) -> str:
    return lfsign.sign_body(body, secret, "json", **kw)


def sig_form(body: bytes, secret: str = SECRET, **kw) -> str:
    return lfsign.sign_body(body, secret, "form", **kw)


# The demo config's Cube key (envoy/envoy.yaml, /cube/): the provider's worked example.
CUBE_KEY_ID = harness.DEFAULT_CUBE_KEY_ID
CUBE_KEY = harness.DEFAULT_CUBE_KEY


def now_ms() -> int:
    return int(time.time() * 1000)


def cube_headers(
    body: bytes,
    key_id: str = CUBE_KEY_ID,
    key: str = CUBE_KEY,
    *,
    timestamp: str | int | None = None,
    version: str = "1.0",
    algo: str = "HMAC-SHA1",
    ctype: str | None = JSON,
) -> list[tuple[str, str]]:
    """Content type + the four Cube headers, signed by lfsign (timestamp default: now)."""
    ts = str(now_ms() if timestamp is None else timestamp)
    hdrs = [] if ctype is None else [("content-type", ctype)]
    return hdrs + [
        ("x-lf-notification-version", version),
        ("x-lf-algo", algo),
        ("x-lf-timestamp", ts),
        ("x-lf-signature", lfsign.sign_cube(body, key_id, key, ts, version, algo)),
    ]


def replace_header(headers: list[tuple[str, str]], name: str, value: str | None):
    """A copy of headers with `name` set to value (None: removed)."""
    out = [(k, v) for k, v in headers if k.lower() != name.lower()]
    return out if value is None else out + [(name, value)]


def header_of(headers: list[tuple[str, str]], name: str) -> str:
    (value,) = [v for k, v in headers if k.lower() == name.lower()]
    return value


def json_body_of_size(n: int) -> bytes:
    """A valid flat JSON object of exactly n bytes."""
    assert n >= 8
    body = b'{"a":"' + b"x" * (n - 8) + b'"}'
    assert len(body) == n
    return body


def wait_no_upstream_bytes(
    backend: harness.RecordingBackend, grace: float = GRACE, since: float | None = None
) -> None:
    """Assert the backend got zero bytes, `grace` seconds after `since` (monotonic; default now)."""
    since = time.monotonic() if since is None else since
    time.sleep(max(0.0, since + grace - time.monotonic()))
    got = backend.total_bytes()
    assert got == 0, f"backend received {got} bytes: {backend.raw()[:300]!r}"


def assert_rejection(
    resp: harness.Response,
    category: str,
    *,
    forbidden: tuple[str, ...] = (),
) -> str:
    """Status, JSON error body, no secret material in the reply; returns the request id."""
    expected_status = CATEGORIES[category]
    assert resp.status == expected_status, (resp.status, resp.body)
    assert (resp.header("content-type") or "").startswith("application/json"), resp.headers
    doc = resp.json()
    assert doc.get("error") == category, doc
    request_id = doc.get("request_id")
    assert isinstance(request_id, str) and request_id, doc
    text = resp.raw.decode("latin-1")
    for secret_thing in (SECRET, *forbidden):
        assert secret_thing not in text, f"reply leaks {secret_thing!r}"
    return request_id


WARN_RE = re.compile(r"\[(warning|warn)\]")


def assert_logged_warn(envoy: harness.Envoy, category: str, request_id: str) -> None:
    def found(text: str) -> bool:
        return any(
            WARN_RE.search(line) and category in line and request_id in line
            for line in text.splitlines()
        )

    text = envoy.wait_for_log(found, timeout=3.0)
    assert found(text), (
        f"no warn log line with {category!r} and request id {request_id!r}; tail:\n"
        + "\n".join(text.splitlines()[-10:])
    )


def md5_verified(key: str, *, sole_md5_key: bool) -> str:
    """The x-lf-verified value of an accepted x-lf-md5 request. Buffer mode sets the header from
    the request headers, before the body says which key matched: it names the key only when the
    route has a single md5 key, else it is just `md5`."""
    if HOLD_HEADERS or sole_md5_key:
        return f"md5; key={key}"
    return "md5"


@contextlib.contextmanager
def running_envoy(backend_server, envoy_bin, wasm_path, yaml_path, **kw):
    """An Envoy started for a fixture (a failed start fails the test with Envoy's log tail),
    always closed afterwards. `kw` goes to harness.Envoy (plugin_config, env, log_level, ...)."""
    env = harness.Envoy(
        backend_server.port, yaml_path=yaml_path, envoy_bin=envoy_bin, wasm_path=wasm_path, **kw
    )
    with started(env) as e:
        yield e


@contextlib.contextmanager
def started(env: harness.Envoy):
    """Start any harness.Envoy (also a subclass such as ecdsutil.DynamicEnvoy) for a fixture: a
    failed start fails the test with Envoy's log tail; always closed afterwards."""
    try:
        env.start()
    except harness.HarnessError as e:
        env.close()
        pytest.fail(str(e), pytrace=False)
    try:
        yield env
    finally:
        env.close()


def envoy_fixture(plugin_config: dict | None = None, yaml_path=None, **kw):
    """A module-scoped `envoy` fixture running the YAML under test (or `yaml_path`) with
    `plugin_config`: `envoy = envoy_fixture(CONFIG)` at module level."""

    @pytest.fixture(scope="module")
    def envoy(envoy_bin, wasm_path, envoy_yaml, backend_server):
        with running_envoy(
            backend_server, envoy_bin, wasm_path, yaml_path or envoy_yaml,
            plugin_config=plugin_config, **kw,
        ) as e:
            yield e

    return envoy
