"""The independent signer (lfsign.py): canonical strings written out by hand, output format."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

import lfsign

# The provider's published sample header (its inputs do NOT reproduce it; format only).
PROVIDER_SAMPLE = "YjExZmMwNTdiZGVmNGMzZjUzYTVhMjExZWExODI4ODY="


def test_provider_sample_is_base64_of_32_lowercase_hex_chars():
    assert len(PROVIDER_SAMPLE) == 44
    decoded = base64.b64decode(PROVIDER_SAMPLE, validate=True)
    assert decoded == b"b11fc057bdef4c3f53a5a211ea182886"
    assert re.fullmatch(rb"[0-9a-f]{32}", decoded)


def test_signature_has_the_provider_format():
    sig = lfsign.sign_md5({"sim_id": "1", "text_message": "device status: 1234"},
                          "xGl64jNW4B223SSDAsddgh=n")
    assert len(sig) == 44 and sig.endswith("=")
    decoded = base64.b64decode(sig, validate=True)
    assert re.fullmatch(rb"[0-9a-f]{32}", decoded)
    expected = hashlib.md5(
        b"sim_id=1&text_message=device status: 1234&xGl64jNW4B223SSDAsddgh=n"
    ).hexdigest()
    assert decoded.decode() == expected


@pytest.mark.parametrize(
    "body, canonical",
    [
        # flat strings, sorted by key, values raw (space, colon not encoded)
        (b'{"sim_id":"8986","imsi":"4230","text_message":"device status: 1234"}',
         "imsi=4230&sim_id=8986&text_message=device status: 1234&S"),
        # numbers keep their literal text; true/false; null -> empty; empty string kept
        (b'{"n":1.50,"i":-0,"e":1E+3,"t":true,"f":false,"z":null,"s":""}',
         "e=1E+3&f=false&i=-0&n=1.50&s=&t=true&z=&S"),
        # JSON escapes are decoded; non-ASCII sorts byte-wise after ASCII
        (b'{"\\u00e9":"x","b":"caf\\u00e9 \\"q\\"","B":"\xe2\x82\xac"}',
         'B=\u20ac&b=caf\u00e9 "q"&\u00e9=x&S'),
        # whitespace around tokens is irrelevant
        (b' { "b" : "2" ,\n "a" : "1" } ', "a=1&b=2&S"),
    ],
)
def test_json_canonical_string(body, canonical):
    assert lfsign.canonical_string(lfsign.params_from_json(body), "S") == canonical


@pytest.mark.parametrize(
    "body, canonical",
    [
        (b"b=2&a=1", "a=1&b=2&S"),
        (b"msg=hello+world%21&e=&x=%E2%82%AC%26%3D", "e=&msg=hello world!&x=\u20ac&=&S"),
    ],
)
def test_form_canonical_string(body, canonical):
    assert lfsign.canonical_string(lfsign.params_from_form(body), "S") == canonical


def test_empty_values_skip():
    params = lfsign.params_from_json(b'{"a":"1","b":"","c":null}')
    assert lfsign.canonical_string(params, "S", "skip") == "a=1&S"
    assert lfsign.canonical_string(params, "S", "keep") == "a=1&b=&c=&S"


def test_nested_raw_keeps_text_as_written():
    body = b'{"b":{"y": 2,"x":[1, "a"]},"a":"1"}'
    assert lfsign.params_from_json(body, nested="raw") == [
        ("b", '{"y": 2,"x":[1, "a"]}'), ("a", "1")
    ]


@pytest.mark.parametrize(
    "body",
    [b'[{"a":"1"}]', b'{"a":"1","a":"2"}', b'{"a":{"b":"c"}}', b'{"a":[1]}', b'{"a":', b"",
     b'{"a":NaN}'],
)
def test_json_rejects(body):
    with pytest.raises(ValueError):
        lfsign.params_from_json(body)


def test_form_duplicate_key_rejected():
    with pytest.raises(ValueError):
        lfsign.params_from_form(b"a=1&a=2")


def test_secret_punctuation_is_appended_verbatim():
    assert lfsign.canonical_string({"a": "1"}, "s=&x y") == "a=1&s=&x y"
    assert lfsign.sign_md5({"a": "1"}, "s=&x y") == base64.b64encode(
        hashlib.md5(b"a=1&s=&x y").hexdigest().encode()
    ).decode()
