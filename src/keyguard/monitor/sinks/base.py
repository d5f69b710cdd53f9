"""What every sink shares: the Sink protocol, errors, URL redaction, alert text."""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import urlsplit

from keyguard.errors import KeyguardError


class SinkError(KeyguardError):
    """A delivery attempt failed (the message never carries a secret)."""


class Sink(Protocol):
    """An alert destination; ``name`` is the URL without credentials (safe to log)."""

    kind: str
    name: str

    def send(self, alert: dict[str, Any]) -> None: ...


def redact_url(url: str) -> str:
    """``scheme://host:port/path`` without user info, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def alert_text(alert: dict[str, Any]) -> str:
    """One line describing an alert, for chat, syslog and mail."""
    count = alert.get("count", 1)
    suffix = f" (x{count})" if count and count > 1 else ""
    return (
        f"[{str(alert.get('severity', '')).upper()}] {alert.get('rule')}: {alert.get('title')}"
        f"{suffix} - alert #{alert.get('id')}"
    )
