"""Several keys in one custom plugin config, in real Envoy: key rotation, scheme auto,
per-partner keys, a key whose id and secret come only from the environment, the freshness
window, unsigned routes; and a debug-level workload whose log, replies and stats must not
contain any secret or expected signature.

One Envoy (log level debug) serves the whole module; the startup-failure tests start their own.
Rejections are sent by a fast and a slow client and must leave zero bytes on the backend.
"""

from __future__ import annotations

import base64
import datetime
import json
import time
import uuid

import pytest
import yaml

import harness
import lfsign
from e2eutil import running_envoy
from e2eutil import (
    JSON, assert_logged_warn, assert_rejection, cube_headers, header_of, now_ms,
    replace_header, wait_no_upstream_bytes,
)
from harness import send_request

OLD = "old-S3cret=&rotated"
NEW = "new-S3cret=&current"
UNKNOWN = "never-configured-secret"
CUBE_A = "cubeKeyA-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
CUBE_B = "cubeKeyB-ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvutsrqpo"
BOTH = "both-schemes-S3cret"
P1 = "partner-one-S3cret"
P2 = "partner-two-S3cret"
ENV_ID_VAR = "LF_E2E_ENV_KEY_ID"
ENV_SECRET_VAR = "LF_E2E_ENV_SECRET"
ENV_ID = "envKey7"
ENV_SECRET = "from-the-ENVIRONMENT-only=&42"
ENV_VAR_AS_ID = ENV_ID_VAR.replace("_", "-")  # a plausible wrong key id
ALL_SECRETS = (OLD, NEW, CUBE_A, CUBE_B, BOTH, P1, P2, ENV_SECRET)

# Every secret comes from the environment (inline secrets would be in Envoy's own debug log:
# it prints each filter's configuration at startup), so the FULL log can be searched for them.
SECRET_VARS = {
    "LF_E2E_SECRET_OLD": OLD, "LF_E2E_SECRET_NEW": NEW, "LF_E2E_SECRET_CUBE_A": CUBE_A,
    "LF_E2E_SECRET_CUBE_B": CUBE_B, "LF_E2E_SECRET_BOTH": BOTH, "LF_E2E_SECRET_P1": P1,
    "LF_E2E_SECRET_P2": P2,
}
CONFIG = {
    "keys": [
        {"id": "old", "secret_env": "LF_E2E_SECRET_OLD", "schemes": ["md5"]},
        {"id": "new", "secret_env": "LF_E2E_SECRET_NEW", "schemes": ["md5"]},
        {"id": "cube-a", "secret_env": "LF_E2E_SECRET_CUBE_A", "schemes": ["cube"]},
        {"id": "cube-b", "secret_env": "LF_E2E_SECRET_CUBE_B", "schemes": ["cube"]},
        {"id": "both", "secret_env": "LF_E2E_SECRET_BOTH"},
        {"id": "p1", "secret_env": "LF_E2E_SECRET_P1", "partners": ["P1"]},
        {"id": "p2", "secret_env": "LF_E2E_SECRET_P2", "partners": ["P2", "P2b"]},
        {"id_env": ENV_ID_VAR, "secret_env": ENV_SECRET_VAR},
    ],
    "routes": [
        {"name": "rot", "path_prefix": "/rot/", "scheme": "md5", "keys": ["old", "new"]},
        {"name": "rot-new", "path_prefix": "/rot-new/", "scheme": "md5", "keys": ["new"]},
        {"name": "cube-rot", "path_prefix": "/cube-rot/", "scheme": "cube",
         "keys": ["cube-a", "cube-b"]},
        {"name": "auto", "path_prefix": "/auto/", "scheme": "auto", "keys": ["both"]},
        {"name": "partner", "path_prefix": "/partner/", "scheme": "auto", "keys": ["p1", "p2"]},
        {"name": "partner-field", "path_prefix": "/partner-field/", "scheme": "md5",
         "keys": ["p1"], "partner_field": "pc"},
        {"name": "env", "path_prefix": "/env/", "scheme": "auto", "keys": [ENV_ID]},
        {"name": "fresh-md5", "path_prefix": "/fresh-md5/", "scheme": "md5", "keys": ["old"],
         "freshness": {"max_age_seconds": 600}},
        {"name": "fresh-cube", "path_prefix": "/fresh-cube/", "scheme": "cube",
         "keys": ["cube-a"], "freshness": {"max_age_seconds": 600, "max_future_skew_seconds": 60}},
        {"name": "fresh-date", "path_prefix": "/fresh-date/", "scheme": "md5", "keys": ["old"],
         "freshness": {"max_age_seconds": 600, "body_field": "sent",
                       "body_field_utc_offset": "+08:00"}},
        {"name": "unsigned", "path_prefix": "/unsigned/", "scheme": "auto", "keys": ["both"],
         "allow_unsigned": True},
    ],
}

BODY = b'{"partner_code":"P1","sim_id":"89860220190123456789","text_message":"hi there"}'


def yaml_with_env_keys(src, tmp_dir, names) -> str:
    """The shipped Envoy YAML `src` with `names` added to vm_config host_env_keys."""
    cfg = yaml.safe_load(src.read_text())
    (f,) = harness.wasm_filters(cfg)
    keys = f["typed_config"]["config"]["vm_config"]["environment_variables"]["host_env_keys"]
    keys.extend(names)
    path = tmp_dir / "envoy-env-keys.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def env_yaml(envoy_yaml, tmp_path_factory):
    return yaml_with_env_keys(envoy_yaml, tmp_path_factory.mktemp("keys"),
                              [ENV_ID_VAR, ENV_SECRET_VAR, *SECRET_VARS])


@pytest.fixture(scope="module")
def ring(envoy_bin, wasm_path, env_yaml, backend_server):
    with running_envoy(
        backend_server, envoy_bin, wasm_path, env_yaml, plugin_config=CONFIG,
        env={ENV_ID_VAR: ENV_ID, ENV_SECRET_VAR: ENV_SECRET, **SECRET_VARS}, log_level="debug",
    ) as env:
        yield env


# Everything sent and received by this module, for the leak test.
REPLIES: list[bytes] = []
FORGED_EXPECTED: set[str] = set()  # what forged requests would have needed: must never appear
SENT: set[str] = set()  # every signature a client sent: never in the filter's own log lines


def md5_headers(body: bytes, secret: str, ctype: str = JSON):
    return [("content-type", ctype), ("x-lf-md5", lfsign.sign_body(body, secret))]


def send(env, path, headers, body, **kw):
    SENT.update(v for k, v in headers if k in ("x-lf-md5", "x-lf-signature"))
    resp = send_request(env.listen_port, "POST", path, headers, body, **kw)
    REPLIES.append(resp.raw)
    return resp


def accepted(env, backend, path, headers, body, verified):
    backend.reset()
    resp = send(env, path, headers, body)
    assert resp.status == 200, (path, resp.status, resp.body)
    (req,) = backend.wait_requests(1)
    assert req.body == body
    assert req.header_all("x-lf-verified") == [verified]
    backend.reset()
    return req


def rejected(env, backend, path, headers, body, category, expected=()):
    """Fast and slow client: documented status, warn log, zero backend bytes.
    `expected`: the signatures a genuine request would carry (never in the reply or logs)."""
    FORGED_EXPECTED.update(expected)
    backend.reset()
    for slow in (False, True):
        rid = f"e2e-keys-{path.strip('/').replace('/', '-')}-{uuid.uuid4().hex[:12]}"
        resp = send(env, path, headers + [("x-request-id", rid)], body, slow=slow)
        answered = time.monotonic()
        assert assert_rejection(resp, category, forbidden=ALL_SECRETS + tuple(expected)) == rid
        assert_logged_warn(env, category, rid)
        wait_no_upstream_bytes(backend, since=answered)


def md5_of(body, secret):
    return lfsign.sign_body(body, secret)


def cube_sig(headers):
    return header_of(headers, "x-lf-signature")


# ---------------------------------------------------------------------------------------------
# Rotation and key selection
# ---------------------------------------------------------------------------------------------


def test_legacy_signed_with_second_key_names_it(ring, backend):
    accepted(ring, backend, "/rot/sms", md5_headers(BODY, NEW), BODY, "md5; key=new")


def test_rotation_old_new_unknown(ring, backend):
    accepted(ring, backend, "/rot/sms", md5_headers(BODY, OLD), BODY, "md5; key=old")
    accepted(ring, backend, "/rot/sms", md5_headers(BODY, NEW), BODY, "md5; key=new")
    rejected(ring, backend, "/rot/sms", md5_headers(BODY, UNKNOWN), BODY, "invalid_signature",
             expected=(md5_of(BODY, OLD), md5_of(BODY, NEW)))
    # a route restricted to the new key no longer accepts the old one
    accepted(ring, backend, "/rot-new/sms", md5_headers(BODY, NEW), BODY, "md5; key=new")
    rejected(ring, backend, "/rot-new/sms", md5_headers(BODY, OLD), BODY, "invalid_signature",
             expected=(md5_of(BODY, NEW),))
    # a key of another route is not accepted either
    rejected(ring, backend, "/rot/sms", md5_headers(BODY, BOTH), BODY, "invalid_signature",
             expected=(md5_of(BODY, OLD), md5_of(BODY, NEW)))


def test_cube_rotation_by_key_id(ring, backend):
    path = "/cube-rot/n"
    ha, hb = cube_headers(BODY, "cube-a", CUBE_A), cube_headers(BODY, "cube-b", CUBE_B)
    accepted(ring, backend, path, ha, BODY, "cube; key=cube-a")
    accepted(ring, backend, path, hb, BODY, "cube; key=cube-b")
    ts = header_of(ha, "x-lf-timestamp")
    # cube-b's key value under cube-a's id, unknown id, unknown key value
    for forged in (cube_headers(BODY, "cube-a", CUBE_B, timestamp=ts),
                   cube_headers(BODY, "cube-c", CUBE_A, timestamp=ts),
                   cube_headers(BODY, "cube-a", UNKNOWN, timestamp=ts)):
        rejected(ring, backend, path, forged, BODY, "invalid_signature",
                 expected=(cube_sig(ha),))
    # an md5-only key id cannot sign Cube notifications, even with its own secret
    rejected(ring, backend, path, cube_headers(BODY, "old", OLD), BODY, "invalid_signature")
    # a cube-only key cannot sign legacy notifications on an md5 route
    rejected(ring, backend, "/rot/sms", md5_headers(BODY, CUBE_A), BODY, "invalid_signature")


# ---------------------------------------------------------------------------------------------
# Scheme auto
# ---------------------------------------------------------------------------------------------


def test_auto_accepts_either_scheme(ring, backend):
    accepted(ring, backend, "/auto/x", md5_headers(BODY, BOTH), BODY, "md5; key=both")
    accepted(ring, backend, "/auto/x", cube_headers(BODY, "both", BOTH), BODY, "cube; key=both")


def test_auto_both_headers_is_invalid(ring, backend):
    headers = cube_headers(BODY, "both", BOTH) + [("x-lf-md5", md5_of(BODY, BOTH))]
    rejected(ring, backend, "/auto/x", headers, BODY, "invalid_signature")


def test_auto_neither_header_is_missing(ring, backend):
    rejected(ring, backend, "/auto/x", [("content-type", JSON)], BODY, "missing_signature",
             expected=(md5_of(BODY, BOTH),))


# ---------------------------------------------------------------------------------------------
# Per-partner keys
# ---------------------------------------------------------------------------------------------


def _partner_body(partner: str | None) -> bytes:
    doc = {"sim_id": "8986", "text_message": "x"}
    if partner is not None:
        doc["partner_code"] = partner
    return json.dumps(doc, separators=(",", ":")).encode()


def test_partner_keys_accept_their_own_partner(ring, backend):
    b1, b2 = _partner_body("P1"), _partner_body("P2b")
    accepted(ring, backend, "/partner/x", md5_headers(b1, P1), b1, "md5; key=p1")
    accepted(ring, backend, "/partner/x", md5_headers(b2, P2), b2, "md5; key=p2")
    accepted(ring, backend, "/partner/x", cube_headers(b2, "p2", P2), b2, "cube; key=p2")


def test_partner_not_on_route_is_forbidden(ring, backend):
    body = _partner_body("P3")
    rejected(ring, backend, "/partner/x", md5_headers(body, P1), body, "partner_not_allowed")
    rejected(ring, backend, "/partner/x", cube_headers(body, "p1", P1), body,
             "partner_not_allowed")
    body = _partner_body(None)
    rejected(ring, backend, "/partner/x", md5_headers(body, P1), body, "partner_not_allowed")


def test_another_partners_key_is_forbidden(ring, backend):
    body = _partner_body("P2")
    rejected(ring, backend, "/partner/x", md5_headers(body, P1), body, "partner_not_allowed",
             expected=(md5_of(body, P2),))
    rejected(ring, backend, "/partner/x", cube_headers(body, "p1", P1), body,
             "partner_not_allowed")


def test_partner_forged_signature_is_invalid_not_forbidden(ring, backend):
    """Partner allowed, signature wrong: 401 (the partner check does not replace verification)."""
    body = _partner_body("P1")
    rejected(ring, backend, "/partner/x", md5_headers(body, UNKNOWN), body, "invalid_signature",
             expected=(md5_of(body, P1),))


def test_partner_field_is_configurable(ring, backend):
    good = b'{"pc":"P1","partner_code":"P2","a":"1"}'
    accepted(ring, backend, "/partner-field/x", md5_headers(good, P1), good, "md5; key=p1")
    bad = b'{"pc":"P2","partner_code":"P1","a":"1"}'
    rejected(ring, backend, "/partner-field/x", md5_headers(bad, P1), bad, "partner_not_allowed")


# ---------------------------------------------------------------------------------------------
# Key id and secret from the environment only
# ---------------------------------------------------------------------------------------------


def test_env_key_is_used_and_never_in_the_config(ring, backend):
    # The config names the variables only (the route refers to the key by its public id).
    config_text = ring.config_path.read_text()
    for secret in ALL_SECRETS:
        assert secret not in config_text
    assert {"id_env": ENV_ID_VAR, "secret_env": ENV_SECRET_VAR} in CONFIG["keys"]
    accepted(ring, backend, "/env/x", md5_headers(BODY, ENV_SECRET), BODY, f"md5; key={ENV_ID}")
    accepted(ring, backend, "/env/x", cube_headers(BODY, ENV_ID, ENV_SECRET), BODY,
             f"cube; key={ENV_ID}")
    rejected(ring, backend, "/env/x", cube_headers(BODY, ENV_VAR_AS_ID, ENV_SECRET), BODY,
             "invalid_signature")
    status, dump = ring.admin_get("/config_dump")
    assert status == 200
    for secret in ALL_SECRETS:
        assert secret not in dump


ENV_ONLY = {
    "keys": [{"id_env": ENV_ID_VAR, "secret_env": ENV_SECRET_VAR}],
    "routes": [{"name": "env", "path_prefix": "/env/", "scheme": "auto"}],
}


@pytest.mark.parametrize(
    "missing, field, present_value",
    [(ENV_SECRET_VAR, "keys[0].secret_env", ENV_ID), (ENV_ID_VAR, "keys[0].id_env", ENV_SECRET)],
    ids=["secret_env", "id_env"],
)
def test_envoy_refuses_to_start_without_the_variable(start_envoy, backend, env_yaml, missing,
                                                     field, present_value):
    present = ENV_ID_VAR if missing == ENV_SECRET_VAR else ENV_SECRET_VAR
    envoy = start_envoy(yaml_path=env_yaml, plugin_config=ENV_ONLY,
                        env={missing: None, present: present_value}, ready_timeout=15)
    assert envoy.expect_start_failure() != 0
    log = envoy.log_text()
    assert field in log and missing in log, envoy.log_tail()
    assert present_value not in log
    assert backend.total_bytes() == 0


def test_variable_must_be_listed_in_host_env_keys(start_envoy, backend):
    """Set in Envoy's environment but not passed to the VM: treated as missing, fail closed."""
    envoy = start_envoy(plugin_config=ENV_ONLY, ready_timeout=15,
                        env={ENV_ID_VAR: ENV_ID, ENV_SECRET_VAR: ENV_SECRET})
    assert envoy.expect_start_failure() != 0
    log = envoy.log_text()
    assert ENV_ID_VAR in log, envoy.log_tail()
    assert ENV_SECRET not in log


# ---------------------------------------------------------------------------------------------
# Freshness window
# ---------------------------------------------------------------------------------------------


def _fresh_body(received_at) -> bytes:
    return b'{"partner_code":"P1","received_at":"%s","text_message":"t"}' % str(
        received_at).encode()


def test_freshness_md5_body_field(ring, backend):
    now = now_ms()
    for sent in (now, now - 500_000, now + 200_000):  # fresh, older within 600 s, skew < 300 s
        body = _fresh_body(sent)
        accepted(ring, backend, "/fresh-md5/x", md5_headers(body, OLD), body, "md5; key=old")
    for sent in (now - 700_000, now - 30 * 86_400_000, now + 400_000, 0):
        body = _fresh_body(sent)
        rejected(ring, backend, "/fresh-md5/x", md5_headers(body, OLD), body,
                 "stale_notification")
    body = b'{"partner_code":"P1","text_message":"no time"}'
    rejected(ring, backend, "/fresh-md5/x", md5_headers(body, OLD), body, "stale_notification")
    # stale AND forged: the signature is checked first
    body = _fresh_body(now - 700_000)
    rejected(ring, backend, "/fresh-md5/x", md5_headers(body, UNKNOWN), body,
             "invalid_signature", expected=(md5_of(body, OLD),))


def test_freshness_cube_timestamp(ring, backend):
    now = now_ms()
    for ts in (now, now - 500_000, now + 30_000):
        h = cube_headers(BODY, "cube-a", CUBE_A, timestamp=ts)
        accepted(ring, backend, "/fresh-cube/x", h, BODY, "cube; key=cube-a")
    for ts in (now - 700_000, 12345648444, now + 120_000):  # stale, 1970, beyond 60 s skew
        h = cube_headers(BODY, "cube-a", CUBE_A, timestamp=ts)
        rejected(ring, backend, "/fresh-cube/x", h, BODY, "stale_notification")


def test_freshness_provider_date_with_utc_offset(ring, backend):
    """`2022-01-19T201101`-style local time at +08:00: fresh only if the offset is applied."""
    cst = datetime.timezone(datetime.timedelta(hours=8))

    def body_at(ms):
        t = datetime.datetime.fromtimestamp(ms / 1000, cst).strftime("%Y-%m-%dT%H%M%S")
        return b'{"partner_code":"P1","sent":"%s"}' % t.encode()

    now = now_ms()
    body = body_at(now)
    accepted(ring, backend, "/fresh-date/x", md5_headers(body, OLD), body, "md5; key=old")
    body = body_at(now - 700_000)
    rejected(ring, backend, "/fresh-date/x", md5_headers(body, OLD), body, "stale_notification")


# ---------------------------------------------------------------------------------------------
# Unsigned routes
# ---------------------------------------------------------------------------------------------


def test_unsigned_route_forwards_unsigned_marked_none(ring, backend):
    headers = [("content-type", JSON), ("x-lf-verified", "md5; key=both")]
    req = accepted(ring, backend, "/unsigned/imsi", headers, BODY, "none")
    assert req.header_all("x-lf-verified") == ["none"]


def test_unsigned_route_still_verifies_present_signatures(ring, backend):
    accepted(ring, backend, "/unsigned/imsi",
             md5_headers(BODY, BOTH) + [("x-lf-verified", "none")], BODY, "md5; key=both")
    rejected(ring, backend, "/unsigned/imsi", md5_headers(BODY, UNKNOWN), BODY,
             "invalid_signature", expected=(md5_of(BODY, BOTH),))
    forged = cube_headers(BODY, "both", UNKNOWN)
    rejected(ring, backend, "/unsigned/imsi", forged, BODY, "invalid_signature",
             expected=(cube_sig(cube_headers(BODY, "both", BOTH,
                                             timestamp=header_of(forged, "x-lf-timestamp"))),))
    # a Cube signature with a companion header missing is not "unsigned"
    rejected(ring, backend, "/unsigned/imsi",
             replace_header(cube_headers(BODY, "both", BOTH), "x-lf-algo", None), BODY,
             "invalid_signature")


def test_default_route_rejects_unsigned(ring, backend):
    rejected(ring, backend, "/rot/sms", [("content-type", JSON), ("x-lf-verified", "none")],
             BODY, "missing_signature")


# ---------------------------------------------------------------------------------------------
# No secret or expected signature in the debug log, the replies or the stats
# ---------------------------------------------------------------------------------------------


def _variants(s: str) -> set[str]:
    """The text, plus the encodings a careless log line might use."""
    b = s.encode()
    return {s, json.dumps(s)[1:-1], base64.b64encode(b).decode(), b.hex()}


def test_debug_workload_leaks_no_secret(ring, backend):
    """A mixed workload at debug log level, then every secret and every expected signature is
    searched in the full Envoy log, every local reply and the stats outputs."""
    now = now_ms()
    fresh = _fresh_body(now)
    for path, h, body, verified in [
        ("/rot/a", md5_headers(BODY, OLD), BODY, "md5; key=old"),
        ("/rot/a", md5_headers(BODY, NEW), BODY, "md5; key=new"),
        ("/cube-rot/a", cube_headers(BODY, "cube-b", CUBE_B), BODY, "cube; key=cube-b"),
        ("/auto/a", cube_headers(BODY, "both", BOTH), BODY, "cube; key=both"),
        ("/partner/a", md5_headers(BODY, P1), BODY, "md5; key=p1"),
        ("/env/a", md5_headers(BODY, ENV_SECRET), BODY, f"md5; key={ENV_ID}"),
        ("/fresh-md5/a", md5_headers(fresh, OLD), fresh, "md5; key=old"),
        ("/unsigned/a", [("content-type", JSON)], BODY, "none"),
    ]:
        accepted(ring, backend, path, h, body, verified)
    ts = str(now)
    probe = b'{"partner_code":"P1","probe":"%d"}' % now  # its genuine signatures are never sent
    signed_text = lfsign.cube_signed_text(BODY, "1.0", "HMAC-SHA1", ts).decode()
    for path, h, body, category, expected in [
        ("/rot/b", md5_headers(probe, UNKNOWN), probe, "invalid_signature",
         (md5_of(probe, OLD), md5_of(probe, NEW))),
        ("/unsigned/b", md5_headers(probe, OLD), probe, "invalid_signature",
         (md5_of(probe, BOTH),)),
        ("/cube-rot/b", cube_headers(BODY, "cube-a", UNKNOWN, timestamp=ts), BODY,
         "invalid_signature", (cube_sig(cube_headers(BODY, "cube-a", CUBE_A, timestamp=ts)),)),
        ("/env/b", cube_headers(BODY, ENV_ID, UNKNOWN, timestamp=ts), BODY, "invalid_signature",
         (cube_sig(cube_headers(BODY, ENV_ID, ENV_SECRET, timestamp=ts)),)),
        ("/partner/b", md5_headers(_partner_body("P2"), P1), _partner_body("P2"),
         "partner_not_allowed", ()),
        ("/fresh-cube/b", cube_headers(BODY, "cube-a", CUBE_A, timestamp=now - 900_000), BODY,
         "stale_notification", ()),
    ]:
        rejected(ring, backend, path, h, body, category, expected)

    texts = {"envoy log": None, "replies": b"\n".join(REPLIES).decode("latin-1")}
    for p in ("/stats", "/stats/prometheus", "/clusters", "/server_info", "/config_dump"):
        status, out = ring.admin_get(p)
        assert status == 200, p
        texts[p] = out
    ring.wait_for_log(
        lambda t: "e2e-keys-fresh-cube-b" in t and "lf-webhook-guard: accepted" in t
    )
    log = ring.log_text()
    texts["envoy log"] = log
    assert "[debug]" in log and "lf-webhook-guard: accepted" in log, "debug logging not active"
    assert len(REPLIES) >= 10

    never = set()
    for s in ALL_SECRETS:
        never |= _variants(s)
    # Envoy's own debug log prints request headers, so a signature some client sent genuinely
    # may appear there; an expected signature that no client ever sent must not appear anywhere.
    never_sent = FORGED_EXPECTED - SENT
    assert len(never_sent) >= 3, never_sent
    for sig in FORGED_EXPECTED:
        if "/" not in sig:  # x-lf-md5 (never contains `/`): its hex digest is never sent
            never.add(base64.b64decode(sig).decode())
        if sig in never_sent:
            never |= _variants(sig)
            if "/" in sig:  # cube `{keyId}/{mac}`: the MAC part alone
                never.add(sig.split("/", 1)[1])
    never.add(signed_text)
    # canonical strings of the md5 workload contain a secret: covered by the secrets above
    for where, text in texts.items():
        for s in sorted(never):
            assert s not in text, f"{where} contains {s!r}"
    # Control: the log is detailed enough to matter (Envoy prints request headers at debug).
    assert any(sig in log for sig in SENT), "request headers not in the debug log"
    # The filter's own lines never carry a signature, even one a client sent.
    wasm_lines = [line for line in log.splitlines() if "[wasm]" in line]
    assert wasm_lines
    for sig in SENT:
        for line in wasm_lines:
            assert sig not in line and sig.split("/")[-1] not in line, line
