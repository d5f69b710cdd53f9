"""The ciphertext text form ``kg:v1:<key-name>:<version>:<base64url payload>`` (SPEC §3).

The key name, version and the encryption context are bound as associated data,
so a ciphertext cannot be relabelled to another key or version, nor decrypted
without the context it was sealed with.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from keyguard.errors import InvalidTag, UsageError

PREFIX = "kg:v1:"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Ciphertext:
    """A parsed ciphertext."""

    key: str
    version: int
    payload: bytes

    def text(self) -> str:
        """The text form."""
        body = base64.urlsafe_b64encode(self.payload).rstrip(b"=").decode("ascii")
        return f"{PREFIX}{self.key}:{self.version}:{body}"


def parse(text: str) -> Ciphertext:
    """Parse the text form; malformed input raises a usage error, never a traceback."""
    value = text.strip()
    if not value.startswith(PREFIX):
        raise UsageError("not a keyguard ciphertext", hint="expected kg:v1:<key>:<version>:<payload>")
    parts = value[len(PREFIX) :].split(":")
    if len(parts) != 3:
        raise UsageError("malformed ciphertext", hint="expected kg:v1:<key>:<version>:<payload>")
    name, version_text, body = parts
    if not _NAME.match(name) or not version_text.isdigit() or int(version_text) < 1:
        raise UsageError("malformed ciphertext header", hint="key name or version is invalid")
    if len(version_text) > 9:
        raise UsageError("malformed ciphertext header", hint="version out of range")
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise InvalidTag("ciphertext payload is not valid base64url") from None
    if not payload:
        raise InvalidTag("ciphertext payload is empty")
    return Ciphertext(name, int(version_text), payload)


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
