"""Key references as people type them: ``NAME`` or ``NAME@VERSION``."""

from __future__ import annotations

from keyguard.config import MAX_VERSION
from keyguard.errors import UsageError


def parse_ref(text: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@VERSION`` → ``(name, version or None)``; UsageError otherwise."""
    name, sep, version = text.strip().partition("@")
    if not sep:
        return name, None
    # ASCII digits only (str.isdigit also accepts other scripts' digits), and a version that fits the store
    if not (version.isascii() and version.isdigit()) or len(version) > 10 or not 1 <= int(version) <= MAX_VERSION:
        raise UsageError(
            f"invalid key reference {text[:80]!r}", hint=f"use NAME or NAME@VERSION with 1 ≤ VERSION ≤ {MAX_VERSION}"
        )
    return name, int(version)
