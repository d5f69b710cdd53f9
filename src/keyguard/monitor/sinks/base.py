"""What every sink shares: the Sink protocol, errors, URL redaction, alert text.

A sink URL often *is* a credential: a Slack or chat webhook's path is its
secret, a Splunk token sits in the user part, a webhook secret in the fragment.
Whatever is logged, raised or stored (``alert_deliveries.sink``, ``alert show``)
names a sink by its *reference*: scheme, host and port, ``/…`` for a path,
and a fingerprint of the whole URL so that two sinks on one host stay apart.
The fingerprint is a truncated SHA-256 of a URL whose secret part has at least
a hundred random bits, so it cannot be turned back into the URL.
"""

from __future__ import annotations

import hashlib
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


def _netloc(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or ""
    if port:
        host = f"{host}:{port}"
    return parts.scheme, host, parts.path


def redact_url(url: str) -> str:
    """``scheme://host:port`` and ``/…`` for a path: no user info, path, query or fragment."""
    scheme, host, path = _netloc(url)
    return f"{scheme}://{host}{'/…' if path.strip('/') else ''}"


def fingerprint(url: str) -> str:
    """12 hex digits of SHA-256 over the whole URL (tells sinks apart, reveals nothing)."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]


def reference(url: str) -> str:
    """The name a sink is logged and recorded under: ``scheme://host:port/…#fp=<fingerprint>``."""
    return f"{redact_url(url)}#fp={fingerprint(url)}"


def alert_text(alert: dict[str, Any]) -> str:
    """One line describing an alert, for chat, syslog and mail."""
    count = alert.get("count", 1)
    suffix = f" (x{count})" if count and count > 1 else ""
    return (
        f"[{str(alert.get('severity', '')).upper()}] {alert.get('rule')}: {alert.get('title')}"
        f"{suffix} - alert #{alert.get('id')}"
    )
