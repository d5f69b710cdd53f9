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

from typing import Any, Protocol

from keyguard.audit.sink_names import fingerprint, redact_url, reference
from keyguard.errors import KeyguardError

__all__ = ["Sink", "SinkError", "alert_text", "fingerprint", "redact_url", "reference"]


class SinkError(KeyguardError):
    """A delivery attempt failed (the message never carries a secret)."""


class Sink(Protocol):
    """An alert destination; ``name`` is the URL without credentials (safe to log)."""

    kind: str
    name: str

    def send(self, alert: dict[str, Any]) -> None: ...


def alert_text(alert: dict[str, Any]) -> str:
    """One line describing an alert, for chat, syslog and mail."""
    count = alert.get("count", 1)
    suffix = f" (x{count})" if count and count > 1 else ""
    return (
        f"[{str(alert.get('severity', '')).upper()}] {alert.get('rule')}: {alert.get('title')}"
        f"{suffix} - alert #{alert.get('id')}"
    )
