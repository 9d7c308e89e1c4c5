"""`lf-webhook-guard sign` prints exactly what the independent signer (lfsign.py) computes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import harness
import lfsign

CLI_DEFAULT = harness.REPO / "target" / "release" / "lf-webhook-guard"


@pytest.fixture(scope="module")
def cli() -> str:
    explicit = os.environ.get("LF_CLI")
    if explicit:
        if not Path(explicit).is_file():
            pytest.fail(f"LF_CLI={explicit} not found: run `make build`", pytrace=False)
        return explicit
    if not CLI_DEFAULT.is_file():
        build = subprocess.run(
            ["cargo", "build", "--release", "--bin", "lf-webhook-guard"],
            cwd=harness.REPO, capture_output=True, text=True, timeout=600,
        )
        if build.returncode != 0 or not CLI_DEFAULT.is_file():
            pytest.fail(f"{CLI_DEFAULT} missing and cargo build failed: run `make build`\n"
                        + build.stderr[-2000:], pytrace=False)
    return str(CLI_DEFAULT)


SECRETS = ["e2e-secret-0123=xyz", "xGl64jNW4B223SSDAsddgh=n", "a=&b c%2B+"]

BODIES = [
    # (id, body, kind lfsign uses, --content-type to force or None for auto-detect)
    ("sample-json", b'{"partner_code":"P123456","sim_id":"8986","text_message":"device status: 1234"}',
     "json", None),
    ("unicode", '{"msg":"你好 😀 café","\u00e9":"x","e":"y"}'.encode(), "json", None),
    ("escapes", b'{"m":"caf\\u00e9 \\"q\\" \\\\ \\/ \\n","a":"1"}', "json", None),
    ("numbers", b'{"n":1.50,"i":-0,"e":1E+3,"big":9007199254740991,"x":0.1}', "json", None),
    ("booleans-null", b'{"t":true,"f":false,"z":null}', "json", None),
    ("empty-string", b'{"empty":"","a":"1"}', "json", None),
    ("whitespace", b' {\n "b" : "2" ,\t"a":"a=b&c" } \n', "json", None),
    ("form-plus-escapes", b"msg=hello+world%21&x=%E2%82%AC%26%3D&e=", "form", None),
    ("form-sorted", b"b=2&a=1&c=%2B", "form", None),
    ("form-forced", b"a=1&b=two+words", "form", "form"),
    ("json-forced", b'{"a":"1"}', "json", "json"),
]


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("name,body,kind,force", BODIES, ids=[b[0] for b in BODIES])
def test_cli_sign_matches_lfsign(cli, tmp_path, name, body, kind, force, secret):
    f = tmp_path / "body"
    f.write_bytes(body)
    # `--any-value-types`: the numbers and booleans cases (lfsign signs every JSON type).
    cmd = [cli, "sign", "--any-value-types", "--secret", secret, "--body", str(f)]
    if force:
        cmd += ["--content-type", force]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == lfsign.sign_body(body, secret, kind)
    assert out.stdout.strip() != ""
