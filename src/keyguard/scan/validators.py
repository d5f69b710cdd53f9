"""Structural checks a rule can require of its secret (checksums, decodable parts).

A validator never contacts a provider: it only checks what the format itself
guarantees, such as the CRC32 checksum GitHub and npm embed in their tokens.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable

from keyguard.scan.checksums import BASE62, base62, crc32_token_ok

__all__ = ["BASE62", "VALIDATORS", "base62", "crc32_token_ok"]


def _b64decode(text: str) -> bytes | None:
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def jwt_ok(token: str) -> bool:
    """A JWT whose header decodes to a JSON object naming an ``alg``."""
    parts = token.split(".")
    if len(parts) not in (3, 5):
        return False
    raw = _b64decode(parts[0])
    if raw is None:
        return False
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and "alg" in header


def basic_auth_ok(token: str) -> bool:
    """Base64 of ``user:password`` with a non-trivial password."""
    raw = _b64decode(token)
    if raw is None:
        return False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    user, sep, password = text.partition(":")
    if not sep or not user or len(password) < 6 or not text.isprintable():
        return False
    from keyguard.scan.filters import is_placeholder, is_templated

    return not (is_placeholder(password) or is_templated(password))


def k8s_value_ok(token: str) -> bool:
    """A Kubernetes Secret value: base64 of printable, high-entropy, non-placeholder text."""
    raw = _b64decode(token)
    if raw is None:
        return False
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return False
    from keyguard.scan.entropy import shannon
    from keyguard.scan.filters import is_placeholder, is_templated

    if len(text) < 8 or not text.isprintable() or shannon(text) < 3.0:
        return False
    return not (is_placeholder(text) or is_templated(text))


def not_all_alpha(token: str) -> bool:
    """Random tokens mix digits in; all-letter values are usually identifiers, unless the
    case flips as often as in random text (``IGcZBJZcOJcm…``, not ``camelCaseName``)."""
    if not token.isalpha():
        return True
    if len(token) < 20:
        return False
    flips = sum(a.isupper() != b.isupper() for a, b in zip(token, token[1:], strict=False))
    return flips * 3 >= len(token)


def mixed_case(token: str) -> bool:
    """Both upper- and lower-case letters (random tokens over [A-Za-z])."""
    return any(c.isupper() for c in token) and any(c.islower() for c in token)


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "crc32-token": crc32_token_ok,
    "jwt": jwt_ok,
    "basic-auth": basic_auth_ok,
    "mixed": not_all_alpha,
    "k8s-value": k8s_value_ok,
    "mixed-case": mixed_case,
}
