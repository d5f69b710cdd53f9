"""Who may read ``/metrics``, and the separate metrics listener of ``serve --metrics-listen``.

Metrics say what the vault is doing (operation rates, refusals, alert deliveries),
so the API's ``/metrics`` is not public: the caller sends
``Authorization: Bearer <token>`` with either a *metrics token* (for scrapers,
which cannot renew short-lived client tokens) or a client token whose role may
read the audit log (admin, operator, auditor). The metrics token is configured
as ``KEYGUARD_METRICS_TOKEN``, or in ``$KEYGUARD_HOME/keyguard.toml``::

    [metrics]
    token_file = "/etc/keyguard/metrics.token"   # the token, read at start
    token_sha256 = "9f86d0…"                      # or only its SHA-256 (hex)

Only SHA-256 digests are kept in memory and compared, in constant time.
Alternatively ``serve --metrics-listen 127.0.0.1:9464`` serves the metrics on
their own listener (no token: bind it where only the scraper reaches).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request

from keyguard.api.deps import get_principal
from keyguard.errors import UsageError

ENV_TOKEN = "KEYGUARD_METRICS_TOKEN"  # noqa: S105 - the variable's name, not a token


def digest(token: str) -> bytes:
    """SHA-256 of a metrics token."""
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class MetricsAccess:
    """The digests of the accepted metrics tokens (none: only client tokens are accepted)."""

    digests: tuple[bytes, ...] = ()

    def accepts(self, token: str) -> bool:
        """True when ``token`` is a configured metrics token (constant time over every digest)."""
        candidate = digest(token)
        found = False
        for known in self.digests:
            found |= hmac.compare_digest(candidate, known)
        return found


def _section(config_file: Path) -> dict[str, Any]:
    if not config_file.exists():
        return {}
    try:
        data = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        raise UsageError(f"cannot read {config_file.name}", hint="check the TOML syntax") from None
    section = data.get("metrics", {})
    if not isinstance(section, dict):
        raise UsageError("[metrics] must be a table", hint="token_file or token_sha256")
    return section


def load_access(
    config_file: Path | None, token: str | None = None, environ: dict[str, str] | None = None
) -> MetricsAccess:
    """The metrics tokens from ``token``, ``KEYGUARD_METRICS_TOKEN`` and ``[metrics]`` of keyguard.toml."""
    env = os.environ if environ is None else environ
    digests: list[bytes] = []
    for value in (token, env.get(ENV_TOKEN)):
        if value and value.strip():
            digests.append(digest(value.strip()))
    section = _section(config_file) if config_file is not None else {}
    token_file = section.get("token_file")
    if token_file is not None:
        try:
            text = Path(str(token_file)).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read [metrics] token_file: {exc.strerror}", hint="check the path") from None
        if not text:
            raise UsageError("[metrics] token_file is empty", hint="write the scraper's token into it")
        digests.append(digest(text))
    hashed = section.get("token_sha256")
    if hashed is not None:
        try:
            raw = bytes.fromhex(str(hashed))
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise UsageError("[metrics] token_sha256 must be 64 hex digits", hint="sha256sum of the token")
        digests.append(raw)
    return MetricsAccess(tuple(digests))


async def authorize(request: Request) -> None:
    """Let the request read the metrics, or raise 401 (audited) / 403."""
    access: MetricsAccess = getattr(request.app.state, "metrics_access", MetricsAccess())
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip() and access.accepts(token.strip()):
        return
    principal = await get_principal(request)
    principal.require("audit.read")


def parse_listen(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6) of ``--metrics-listen``."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"invalid --metrics-listen {address!r}", hint="HOST:PORT, e.g. 127.0.0.1:9464")
    return host, int(port)


def start_listener(address: str) -> Any:
    """Serve the Prometheus registry on ``address`` from a daemon thread; returns the server."""
    from prometheus_client import start_http_server

    host, port = parse_listen(address)
    try:
        server, _thread = start_http_server(port, addr=host)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {address}: {exc.strerror}", hint="choose another --metrics-listen"
        ) from None
    return server
