"""How a sink URL is named in logs, errors and records: ``scheme://host:port/…#fp=<fingerprint>``.

A sink URL often *is* a credential (a webhook's path, a token in the user part or the
query), so only scheme, host and port are shown, ``/…`` for a path, and a fingerprint
of the whole URL that tells two sinks on one host apart and cannot be turned back.
Shared by the alert sinks (monitor) and the audit checkpoint pusher.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit


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
