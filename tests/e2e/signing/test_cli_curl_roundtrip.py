"""Round trip in real Envoy: the command printed by `lf-webhook-guard sign --curl` is accepted
by the filter (shipped demo config), and the backend gets the body unchanged."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import harness

CLI_DEFAULT = harness.REPO / "target" / "release" / "lf-webhook-guard"


@pytest.fixture(scope="module")
def cli() -> str:
    path = Path(os.environ.get("LF_CLI") or CLI_DEFAULT)
    if not path.is_file():
        pytest.fail(f"{path} not found: run `make build` (or set LF_CLI)", pytrace=False)
    return str(path)


def signed_curl(cli: str, args: list[str], body: bytes, env: dict[str, str]) -> str:
    out = subprocess.run(
        [cli, "sign", *args, "--body", "-"],
        input=body, capture_output=True, timeout=30, env={**os.environ, **env},
    )
    assert out.returncode == 0, out.stderr
    cmd = out.stdout.decode()
    assert cmd.startswith("curl ")
    return cmd


def run_curl(cmd: str) -> str:
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.decode("utf-8", "replace")


BODIES = [
    ("json", b'{"partner_code":"P123456","sim_id":"8986","text_message":"it\'s $HOME `x` \\"q\\" 1234"}'),
    ("form", b"text_message=it%27s+%24HOME&sim_id=8986&empty="),
]


@pytest.mark.parametrize("name,body", BODIES, ids=[b[0] for b in BODIES])
def test_md5_curl_is_accepted(cli, guard, backend, name, body):
    cmd = signed_curl(
        cli,
        ["--secret-env", "LF_WEBHOOK_SECRET", "--curl", f"{guard.url_base}/linksfield/sms"],
        body,
        {"LF_WEBHOOK_SECRET": harness.DEFAULT_SECRET},
    )
    response = run_curl(cmd)
    assert response.startswith("HTTP/1.1 200"), response
    (req,) = backend.wait_requests(1)
    assert req.body == body
    assert req.header("x-lf-verified") == "md5; key=demo"


def test_cube_curl_is_accepted(cli, guard, backend):
    body = b'{"name": "liguoli","age": 18,"note":"it\'s"}'
    cmd = signed_curl(
        cli,
        ["--scheme", "cube", "--key-id", harness.DEFAULT_CUBE_KEY_ID, "--secret-env", "K",
         "--curl", f"{guard.url_base}/cube/usage"],
        body,
        {"K": harness.DEFAULT_CUBE_KEY},
    )
    response = run_curl(cmd)
    assert response.startswith("HTTP/1.1 200"), response
    (req,) = backend.wait_requests(1)
    assert req.body == body
    assert req.header("x-lf-verified") == f"cube; key={harness.DEFAULT_CUBE_KEY_ID}"


def test_curl_with_the_wrong_secret_is_rejected(cli, guard, backend):
    cmd = signed_curl(
        cli,
        ["--secret", "not-the-secret", "--curl", f"{guard.url_base}/linksfield/sms"],
        BODIES[0][1],
        {},
    )
    response = run_curl(cmd)
    assert response.startswith("HTTP/1.1 401"), response
    assert '"error":"invalid_signature"' in response
    assert backend.total_bytes() == 0
