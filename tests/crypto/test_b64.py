"""keyguard.crypto.b64 gives what the standard library gives, for every input.

The reference for base64url is the rule the ciphertext form had before (a regular
expression over RFC 4648 §5, then the standard decoder): the fast codec must
accept exactly what it accepted and decode it alike.
"""

from __future__ import annotations

import base64
import re
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyguard.crypto import b64

_BASE64URL = re.compile(r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}(?:==)?|[A-Za-z0-9_-]{3}=?)?$")
# mostly alphabet characters, with the ones that make base64 go wrong
_CHARS = st.sampled_from(list("ABCxyz0189-_+/=") + [" ", "\n", "é", "\x00", "."])


def _reference_url(body: str) -> bytes | None:
    if not _BASE64URL.fullmatch(body):
        return None
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def _reference(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None


def _ours(decoder: object, text: str) -> bytes | None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a deprecation from the codec is a failure too
        try:
            return decoder(text)  # type: ignore[operator,no-any-return]
        except ValueError:
            return None


@given(st.binary(max_size=300))
def test_encodings_match_the_standard_library(data: bytes) -> None:
    assert b64.encode(data) == base64.b64encode(data).decode()
    assert b64.encode_url(data) == base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    assert b64.decode(b64.encode(data)) == data
    assert b64.decode_url(b64.encode_url(data)) == data


@given(st.text(_CHARS, max_size=40))
def test_base64url_accepts_and_refuses_what_the_rule_does(body: str) -> None:
    assert _ours(b64.decode_url, body) == _reference_url(body)


@given(st.text(_CHARS, max_size=40))
def test_standard_decoding_accepts_and_refuses_what_the_standard_library_does(text: str) -> None:
    assert _ours(b64.decode, text) == _reference(text)


@pytest.mark.parametrize("body", ["ab=", "a", "abcde", "ab+/", "ab/_", "ab==cd", "abc\n", "AAAA=", "é"])
def test_bad_base64url_is_refused(body: str) -> None:
    with pytest.raises(ValueError):
        b64.decode_url(body)


@pytest.mark.parametrize(("text", "data"), [("abcd=", b"i\xb7\x1d"), ("abcd==", b"i\xb7\x1d"), ("", b"")])
def test_surplus_padding_decodes_as_the_standard_library_does(text: str, data: bytes) -> None:
    assert b64.decode(text) == data
