"""The independent Cube signer (lfsign.sign_cube): the provider's worked example and the
canonical JSON rules, written out by hand."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

import lfsign

KEY_ID = "Ou8a5lyzPjN86ikmLeFC"
KEY = "3QY0I6jA6jOfeIQbOde3CG2DeOllV1zufpFR393my78h3tCn7P1IfyUIhV3cS8ks"
EXAMPLE_BODY = b'{"name": "liguoli","age": 18}'
EXAMPLE_SIGNATURE = "Ou8a5lyzPjN86ikmLeFC/pnWR3hcrEXQWV8S+RY0DMjEN9ec="


def test_provider_worked_example():
    assert lfsign.cube_canonical_json(EXAMPLE_BODY) == '{"age":18,"name":"liguoli"}'
    assert lfsign.cube_signed_text(EXAMPLE_BODY, "1.0", "HMAC-SHA1", "12345648444") == (
        b'1.0:HMAC-SHA1:12345648444{"age":18,"name":"liguoli"}'
    )
    assert lfsign.sign_cube(EXAMPLE_BODY, KEY_ID, KEY, "12345648444") == EXAMPLE_SIGNATURE


def test_mac_is_base64_of_raw_hmac_sha1():
    sig = lfsign.sign_cube(b'{"a":"1"}', "k", "secret", "1")
    key_id, mac = sig.split("/", 1)
    assert key_id == "k"
    assert base64.b64decode(mac, validate=True) == hmac.new(
        b"secret", b'1.0:HMAC-SHA1:1{"a":"1"}', hashlib.sha1
    ).digest()
    assert len(mac) == 28


@pytest.mark.parametrize(
    "body, canonical",
    [
        # keys sorted at every level, arrays keep their order, white space dropped
        (b'{ "b" : {"y":1, "x":[3, {"d":1,"c":2}, 1]}, "a" : [] , "c":{} }',
         '{"a":[],"b":{"x":[3,{"c":2,"d":1},1],"y":1},"c":{}}'),
        # numbers are their literal text; big integers are not rounded
        (b'{"f":1.50,"e":1E+3,"z":-0,"n":-12.0e-2,"big":123456789012345678901234567890}',
         '{"big":123456789012345678901234567890,"e":1E+3,"f":1.50,"n":-12.0e-2,"z":-0}'),
        # true/false/null kept
        (b'{"t":true,"f":false,"n":null}', '{"f":false,"n":null,"t":true}'),
        # escapes: \u00e9 and \/ become raw UTF-8 / slash; quote, backslash, controls escaped
        (b'{"s":"caf\\u00e9 \\/ \\"q\\" \\\\ \\n\\t\\u0001 \xe2\x82\xac \\ud83d\\ude00"}',
         '{"s":"caf\u00e9 / \\"q\\" \\\\ \\n\\t\\u0001 \u20ac \U0001F600"}'),
        # byte-wise key order: upper case < lower case < non-ASCII
        (b'{"\\u00e9":1,"b":2,"B":3,"a\\u0000":4,"a":5}',
         '{"B":3,"a":5,"a\\u0000":4,"b":2,"\u00e9":1}'),
    ],
)
def test_canonical_json(body, canonical):
    assert lfsign.cube_canonical_json(body) == canonical


@pytest.mark.parametrize(
    "body",
    [b'{"a":1,"a":1}', b'{"n":{"x":1,"x":2}}', b'{"l":[{"x":1,"\\u0078":2}]}', b'[{"a":1}]',
     b'"a"', b'{"a":NaN}', b'{"a":1', b""],
)
def test_rejects(body):
    with pytest.raises(ValueError):
        lfsign.cube_canonical_json(body)
