"""Key references as people type them: ``NAME`` or ``NAME@VERSION``."""

from __future__ import annotations

from keyguard.errors import UsageError


def parse_ref(text: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@VERSION`` → ``(name, version or None)``; UsageError otherwise."""
    name, sep, version = text.strip().partition("@")
    if not sep:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise UsageError(f"invalid key reference {text!r}", hint="use NAME or NAME@VERSION, e.g. pay@1")
    return name, int(version)
