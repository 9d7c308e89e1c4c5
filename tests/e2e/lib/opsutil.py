"""Helpers for the operations tests (metrics, shadow mode, de-duplication): an independent Cube
signer (hmac/hashlib), request builders and a /stats reader for the filter's counters."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import harness
from e2eutil import JSON, sig_json
from harness import send_request

PREFIX = "wasmcustom.lf_webhook_guard."
CUBE_KEY_ID = harness.DEFAULT_CUBE_KEY_ID
CUBE_KEY = harness.DEFAULT_CUBE_KEY


def notification(n: int | str, partner: str = "P123456") -> bytes:
    """A distinct SMS-uplink-like JSON notification (flat string values)."""
    return json.dumps(
        {
            "partner_code": partner,
            "sim_id": f"8986022019{int(n) if str(n).isdigit() else 0:010d}",
            "imsi": "4230001234567",
            "message_type": "Text",
            "text_message": f"message {n}",
            "received_at": "1642385160000",
        },
        separators=(",", ":"),
    ).encode()


def cube_headers(body: bytes, key_id: str = CUBE_KEY_ID, key: str = CUBE_KEY,
                 timestamp: str = "1683524066000") -> list[tuple[str, str]]:
    """Cube headers for a JSON body: HMAC-SHA1 over `1.0:HMAC-SHA1:<ts>` + compact sorted JSON."""
    canonical = json.dumps(json.loads(body), separators=(",", ":"), sort_keys=True,
                           ensure_ascii=False)
    text = f"1.0:HMAC-SHA1:{timestamp}".encode() + canonical.encode()
    mac = base64.b64encode(hmac.new(key.encode(), text, hashlib.sha1).digest()).decode()
    return [
        ("content-type", JSON),
        ("x-lf-notification-version", "1.0"),
        ("x-lf-algo", "HMAC-SHA1"),
        ("x-lf-timestamp", timestamp),
        ("x-lf-signature", f"{key_id}/{mac}"),
    ]


def post_md5(envoy: harness.Envoy, path: str, body: bytes, sig: str | None = "auto",
             secret: str | None = None, extra: list[tuple[str, str]] = (), **kw):
    """POST a JSON body; sig="auto" signs it (with `secret` or the default), None omits it."""
    if sig == "auto":
        sig = sig_json(body) if secret is None else sig_json(body, secret)
    headers = [("content-type", JSON)] + ([("x-lf-md5", sig)] if sig else []) + list(extra)
    return send_request(envoy.listen_port, "POST", path, headers, body, **kw)


def lf_stats(envoy: harness.Envoy) -> dict[str, int]:
    """The filter's counters from admin /stats, without the `wasmcustom.lf_webhook_guard.`
    prefix (e.g. {"requests_total": 3, "rejected.reason=invalid_signature": 1, ...})."""
    return lf_counters(envoy.stats())


def lf_counters(stats: dict) -> dict[str, int]:
    """The filter's counters out of an already read /stats dict (see `lf_stats`)."""
    return {
        name[len(PREFIX):]: value
        for name, value in stats.items()
        if name.startswith(PREFIX) and isinstance(value, int)
    }


def nonzero(stats: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in stats.items() if v}
