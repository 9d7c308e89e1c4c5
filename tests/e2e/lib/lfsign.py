"""Independent Linksfield legacy (`x-lf-md5`) signer, built on Python's hashlib only.

Rule: body parameters sorted by key (byte-wise on UTF-8), joined as `key=value` with `&`,
then `&` + secret appended; MD5; lowercase hex digest (32 ASCII chars); standard base64 of
those 32 ASCII characters (44 chars with padding). Values are plain text, not URL-encoded.

JSON bodies (top-level object): string -> decoded text; number -> its literal text exactly as
written; true/false -> `true`/`false`; null -> empty string. Nested objects/arrays raise
ValueError unless nested="raw" (then the value is the exact JSON text as written in the body).
Form bodies: decoded values (parse_qsl, `+` is a space). Duplicate keys raise ValueError.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Iterable
from urllib.parse import parse_qsl

Params = list[tuple[str, str]]


class _Literal(str):
    """A JSON number kept as the literal text from the body."""


def _reject_constant(name: str):
    raise ValueError(f"not JSON: {name}")


def _scalar(value) -> str:
    if isinstance(value, str):  # includes _Literal numbers
        return str(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    raise ValueError(f"nested value: {value!r}")


def _no_duplicates(pairs: Iterable[tuple[str, str]]) -> Params:
    pairs = list(pairs)
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate key in {keys}")
    return pairs


def params_from_json(body: bytes, nested: str = "reject") -> Params:
    text = body.decode("utf-8")
    if nested == "raw":
        return _raw_top_level(text)
    obj = json.loads(
        text,
        parse_int=_Literal,
        parse_float=_Literal,
        parse_constant=_reject_constant,
        object_pairs_hook=lambda pairs: pairs,  # keep order and duplicates
    )
    if not isinstance(obj, list) or text.lstrip()[:1] != "{":
        raise ValueError("top-level JSON value is not an object")
    return _no_duplicates((k, _scalar(v)) for k, v in obj)


def _raw_top_level(text: str) -> Params:
    """Top-level object; nested values kept as the exact text written in the body."""
    dec = json.JSONDecoder(
        parse_int=_Literal, parse_float=_Literal, parse_constant=_reject_constant
    )
    ws = " \t\r\n"
    i = 0

    def skip(i):
        while i < len(text) and text[i] in ws:
            i += 1
        return i

    i = skip(i)
    if text[i : i + 1] != "{":
        raise ValueError("top-level JSON value is not an object")
    i = skip(i + 1)
    pairs: Params = []
    if text[i : i + 1] == "}":
        i += 1
    else:
        while True:
            if text[i : i + 1] != '"':
                raise ValueError("expected key")
            key, i = json.decoder.scanstring(text, i + 1)
            i = skip(i)
            if text[i : i + 1] != ":":
                raise ValueError("expected ':'")
            i = skip(i + 1)
            value, end = dec.raw_decode(text, i)
            if isinstance(value, (dict, list)):
                pairs.append((key, text[i:end]))
            else:
                pairs.append((key, _scalar(value)))
            i = skip(end)
            if text[i : i + 1] == ",":
                i = skip(i + 1)
                continue
            if text[i : i + 1] == "}":
                i += 1
                break
            raise ValueError("expected ',' or '}'")
    if skip(i) != len(text):
        raise ValueError("trailing data")
    return _no_duplicates(pairs)


def params_from_form(body: bytes) -> Params:
    pairs = parse_qsl(
        body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
        encoding="utf-8", errors="strict",
    )
    return _no_duplicates(pairs)


def canonical_string(params: Params | dict, secret: str, empty_values: str = "keep") -> str:
    items = list(params.items()) if isinstance(params, dict) else list(params)
    if empty_values == "skip":
        items = [(k, v) for k, v in items if v != ""]
    items.sort(key=lambda kv: kv[0].encode("utf-8"))
    return "&".join(f"{k}={v}" for k, v in items) + "&" + secret


def hex_digest(params: Params | dict, secret: str, empty_values: str = "keep") -> str:
    return hashlib.md5(canonical_string(params, secret, empty_values).encode("utf-8")).hexdigest()


def sign_md5(params: Params | dict, secret: str, empty_values: str = "keep") -> str:
    """The `x-lf-md5` header value: base64 of the 32 lowercase hex characters."""
    return base64.b64encode(hex_digest(params, secret, empty_values).encode("ascii")).decode("ascii")


def sign_body(body: bytes, secret: str, kind: str = "json", **kw) -> str:
    nested = kw.pop("nested", "reject")
    params = params_from_json(body, nested) if kind == "json" else params_from_form(body)
    return sign_md5(params, secret, **kw)


# --------------------------------------------------------------------------------------------
# Cube scheme (`x-lf-signature`), built on Python's json, hmac and hashlib only.
#
# Signed text: `{version}:{algo}:{timestamp}` immediately followed by the body re-serialised as
# compact JSON: object keys sorted at every level (byte-wise on UTF-8), arrays in order, numbers
# as their literal text from the body (1.50 stays 1.50), strings re-escaped minimally (json.dumps
# with ensure_ascii=False: `"`, `\` and control characters only). Duplicate keys at any level
# raise ValueError. Header: `{keyId}/{base64(HMAC-SHA1(key, signed text))}`.
# --------------------------------------------------------------------------------------------


class _Object(list):
    """A JSON object as its (key, value) pairs (distinguishes objects from arrays)."""


def _object_no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate key in {keys}")
    return _Object(pairs)


def _cube_compact(value) -> str:
    if isinstance(value, _Literal):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, _Object):
        members = sorted(value, key=lambda kv: kv[0].encode("utf-8"))
        return "{" + ",".join(
            json.dumps(k, ensure_ascii=False) + ":" + _cube_compact(v) for k, v in members
        ) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_cube_compact(v) for v in value) + "]"
    raise ValueError(f"unexpected JSON value {value!r}")


def _cube_parse(body: bytes) -> "_Object":
    """A Cube body's top-level object (numbers kept as literals, duplicate keys rejected)."""
    obj = json.loads(
        body.decode("utf-8"),
        parse_int=_Literal,
        parse_float=_Literal,
        parse_constant=_reject_constant,
        object_pairs_hook=_object_no_duplicates,
    )
    if not isinstance(obj, _Object):
        raise ValueError("top-level JSON value is not an object")
    return obj


def cube_canonical_json(body: bytes) -> str:
    """The body as the Cube scheme signs it (top level must be an object)."""
    return _cube_compact(_cube_parse(body))


def cube_signed_text(body: bytes, version: str, algo: str, timestamp: str) -> bytes:
    return f"{version}:{algo}:{timestamp}".encode("utf-8") + cube_canonical_json(body).encode(
        "utf-8"
    )


def cube_mac(body: bytes, key: str, timestamp: str, version: str = "1.0",
             algo: str = "HMAC-SHA1") -> str:
    """base64 of the raw HMAC-SHA1 bytes (the part after the slash)."""
    return cube_mac_of_text(cube_signed_text(body, version, algo, timestamp), key)


def cube_mac_of_text(text: bytes, key: str) -> str:
    """base64 HMAC-SHA1 of an already built signed text (key = the key value's bytes)."""
    return base64.b64encode(hmac.new(key.encode("ascii"), text, hashlib.sha1).digest()).decode(
        "ascii"
    )


def sign_cube(body: bytes, key_id: str, key: str, timestamp: str, version: str = "1.0",
              algo: str = "HMAC-SHA1") -> str:
    """The `x-lf-signature` header value: `{keyId}/{base64(HMAC-SHA1)}`."""
    return f"{key_id}/{cube_mac(body, key, timestamp, version, algo)}"


# --------------------------------------------------------------------------------------------
# Typed views (differential/test_parsers.py): the same parsing as above, keeping each value's JSON
# type. (key, text, type); text as the signature covers it (the functions above), type one of
# string number bool null object array. The functions above are unchanged.
# --------------------------------------------------------------------------------------------

TypedParams = list[tuple[str, str, str]]


def _json_type(value) -> str:
    if isinstance(value, _Literal):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is True or value is False:
        return "bool"
    if value is None:
        return "null"
    if isinstance(value, _Object):
        return "object"
    if isinstance(value, list):
        return "array"
    raise ValueError(f"unexpected JSON value {value!r}")


def typed_params_from_json(body: bytes) -> TypedParams:
    """params_from_json(body) (nested values rejected) with each value's JSON type."""
    text = body.decode("utf-8")
    obj = json.loads(
        text,
        parse_int=_Literal,
        parse_float=_Literal,
        parse_constant=_reject_constant,
        object_pairs_hook=lambda pairs: pairs,
    )
    if not isinstance(obj, list) or text.lstrip()[:1] != "{":
        raise ValueError("top-level JSON value is not an object")
    out = [(k, _scalar(v), _json_type(v)) for k, v in obj]
    _no_duplicates((k, t) for k, t, _ in out)
    return out


def typed_params_from_form(body: bytes) -> TypedParams:
    """params_from_form(body): every value is a string."""
    return [(k, v, "string") for k, v in params_from_form(body)]


def cube_typed_top_level(body: bytes) -> TypedParams:
    """The Cube canonical body's top-level members: (key, text, type); a string's text is the
    string, a number's its literal, true/false/null as written (null's text ""), an object's or
    array's text its canonical compact JSON (cube_canonical_json's rules)."""
    out = []
    for k, v in _cube_parse(body):
        kind = _json_type(v)
        text = _cube_compact(v) if kind in ("object", "array") else _scalar(v)
        out.append((k, text, kind))
    return out
