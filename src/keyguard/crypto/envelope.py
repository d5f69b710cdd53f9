"""The ciphertext text form ``kg:v1:<key-name>:<version>:<base64url payload>`` (SPEC §3).

The key name, version and the encryption context are bound as associated data,
so a ciphertext cannot be relabelled to another key or version, nor decrypted
without the context it was sealed with.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from keyguard.crypto import b64
from keyguard.errors import InvalidTag, UsageError

PREFIX = "kg:v1:"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_VERSION = re.compile(r"^[1-9][0-9]{0,8}$")


@dataclass(frozen=True)
class Ciphertext:
    """A parsed ciphertext."""

    key: str
    version: int
    payload: bytes

    def text(self) -> str:
        """The text form."""
        return f"{PREFIX}{self.key}:{self.version}:{b64.encode_url(self.payload)}"


def parse(text: str) -> Ciphertext:
    """Parse the text form; malformed input raises a usage error, never a traceback."""
    value = text.strip()
    if not value.startswith(PREFIX):
        raise UsageError("not a keyguard ciphertext", hint="expected kg:v1:<key>:<version>:<payload>")
    parts = value[len(PREFIX) :].split(":")
    if len(parts) != 3:
        raise UsageError("malformed ciphertext", hint="expected kg:v1:<key>:<version>:<payload>")
    name, version_text, body = parts
    if not _NAME.match(name) or not version_text.isascii() or not version_text.isdigit() or int(version_text) < 1:
        raise UsageError("malformed ciphertext header", hint="key name or version is invalid")
    if not _VERSION.fullmatch(version_text):
        raise UsageError("malformed ciphertext header", hint="version out of range")
    payload = decode_base64url(body)
    if not payload:
        raise InvalidTag("ciphertext payload is empty")
    return Ciphertext(name, int(version_text), payload)


def decode_base64url(body: str) -> bytes:
    """Strict base64url (RFC 4648 §5): any other character or an impossible length is bad input.

    Python's decoder silently drops characters outside the alphabet, which turned a
    mistyped payload into an apparent tampering (exit 5) instead of bad input (exit 2).
    """
    try:
        return b64.decode_url(body)
    except ValueError:
        raise UsageError("ciphertext payload is not valid base64url", hint="use the text printed by encrypt") from None


def canonical_context(context: dict[str, Any] | None) -> bytes:
    """Canonical JSON of an encryption context (sorted keys, no spaces)."""
    if not context:
        return b""
    if not isinstance(context, dict):
        raise UsageError("encryption context must be a JSON object")
    return json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def associated_data(key: str, version: int, context: dict[str, Any] | None) -> bytes:
    """The AAD that binds key name, version and context."""
    return f"{PREFIX}{key}:{version}:".encode() + canonical_context(context)


def parse_context(text: str | None) -> dict[str, Any] | None:
    """Parse a ``--context`` JSON object."""
    if text is None or text == "":
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise UsageError("encryption context is not valid JSON", hint='e.g. {"tenant":"acme"}') from None
    if not isinstance(value, dict):
        raise UsageError("encryption context must be a JSON object", hint='e.g. {"tenant":"acme"}')
    return value


def valid_name(name: str) -> bool:
    """True when ``name`` is a valid key or client name."""
    return bool(_NAME.match(name))
