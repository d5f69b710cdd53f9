"""Small conversions shared by the routes: base64 fields and domain objects to schemas."""

from __future__ import annotations

from keyguard.api import schemas
from keyguard.crypto import b64
from keyguard.errors import UsageError
from keyguard.vault.clients import ClientView
from keyguard.vault.service import KeyInfo


def b64decode(value: str, field: str) -> bytes:
    """Decode standard or URL-safe base64 (padding optional), else a 422 naming the field.

    Strict: a character outside the alphabet is refused, not silently dropped.
    """
    text = value.strip()
    if ("-" in text or "_" in text) and not ("+" in text or "/" in text):
        text = text.translate(_URLSAFE_TO_STANDARD)
    try:
        return b64.decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise UsageError(f"{field} is not valid base64") from None


_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


def b64encode(data: bytes) -> str:
    """Standard base64."""
    return b64.encode(data)


def key_out(info: KeyInfo) -> schemas.KeyOut:
    """A key's public view."""
    return schemas.KeyOut.model_validate(info.to_dict())


def client_out(view: ClientView) -> schemas.ClientOut:
    """A client's view."""
    return schemas.ClientOut.model_validate(view.to_dict())


def same_key(path_name: str, ciphertext_key: str) -> None:
    """Refuse a ciphertext of another key than the one in the path."""
    if path_name != ciphertext_key:
        raise UsageError(
            f"the ciphertext belongs to key {ciphertext_key!r}, not {path_name!r}",
            hint=f"POST it to /v1/keys/{ciphertext_key}/…",
        )
