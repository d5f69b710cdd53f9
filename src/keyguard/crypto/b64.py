"""Base64 for the hot path: pybase64's SIMD codec with the standard library's strictness.

A 4 KiB encrypt decodes ~5.5 KB of base64 and encodes ~5.5 KB back; the standard
library spent ~15 µs of a request on that (and a strict base64url check by regular
expression ~35 µs more on decrypt), pybase64 ~1.5 µs. The results are those of
:mod:`base64` for every input (``tests/crypto/test_b64.py`` checks both against
each other): where pybase64 refuses what the standard library accepts (surplus
padding), the standard library decides.
"""

from __future__ import annotations

import base64

import pybase64


def encode(data: bytes) -> str:
    """Standard base64, padded (RFC 4648 §4)."""
    return pybase64.b64encode(data).decode("ascii")


def encode_url(data: bytes) -> str:
    """base64url without padding (RFC 4648 §5), as in the ciphertext text form."""
    return pybase64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode(text: str) -> bytes:
    """``base64.b64decode(text, validate=True)``: a character outside the alphabet raises ValueError."""
    try:
        return pybase64.b64decode(text, validate=True)
    except ValueError:
        return base64.b64decode(text, validate=True)


def decode_url(body: str) -> bytes:
    """Strict base64url, padding optional: any other character or an impossible length raises ValueError.

    Padding, when present, must complete the last group (``ab==``, ``abc=``); a
    length of 4n+1 characters encodes no bytes.
    """
    if "+" in body or "/" in body or (body.endswith("=") and len(body) % 4):
        raise ValueError("not base64url")
    return pybase64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
