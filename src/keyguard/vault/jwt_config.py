"""Settings of the JWT access tokens: ``[auth]`` of ``$KEYGUARD_HOME/keyguard.toml``.

=================  =========  =====================================================
key                default    meaning
=================  =========  =====================================================
``jwt_ttl``        ``15m``    lifetime of an access token (at most 15 minutes)
``jwt_rotation``   ``24h``    how long one signing key signs before the next one
``jwt_algorithm``  ``EdDSA``  ``EdDSA`` (Ed25519) or ``ES256`` (ECDSA P-256)
``jwt_issuer``     keyguard   the ``iss`` written and required
``jwt_audience``   keyguard   the ``aud`` written and required
``jwt_leeway``     ``30s``    clock skew allowed between nodes (at most 5 minutes)
=================  =========  =====================================================
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from keyguard.config import Settings
from keyguard.errors import UsageError
from keyguard.vault.clients import human_ttl, parse_ttl

MAX_JWT_TTL = timedelta(minutes=15)
MAX_LEEWAY = timedelta(minutes=5)
ALGORITHMS = ("EdDSA", "ES256")


@dataclass(frozen=True)
class JwtConfig:
    """How access tokens are issued and checked."""

    ttl: timedelta = MAX_JWT_TTL
    rotation: timedelta = timedelta(hours=24)
    algorithm: str = "EdDSA"
    issuer: str = "keyguard"
    audience: str = "keyguard"
    leeway: timedelta = timedelta(seconds=30)

    def __post_init__(self) -> None:
        if not timedelta(seconds=1) <= self.ttl <= MAX_JWT_TTL:
            raise UsageError(
                f"[auth] jwt_ttl {human_ttl(self.ttl)} is longer than {human_ttl(MAX_JWT_TTL)}",
                hint='access tokens live at most 15 minutes; set jwt_ttl = "15m" or less',
            )
        if self.algorithm not in ALGORITHMS:
            raise UsageError(f"unknown [auth] jwt_algorithm {self.algorithm!r}", hint="EdDSA or ES256")
        if self.leeway > MAX_LEEWAY:
            raise UsageError("[auth] jwt_leeway is longer than 5m", hint="a clock skew of seconds, like 30s")
        if self.rotation < timedelta(minutes=1):
            raise UsageError("[auth] jwt_rotation is shorter than 1m", hint="a period like 24h")
        if not self.issuer or not self.audience:
            raise UsageError("[auth] jwt_issuer and jwt_audience must not be empty")

    @property
    def retention(self) -> timedelta:
        """How long a retired key's public half stays published: every token it signed has expired by then."""
        return MAX_JWT_TTL + self.leeway


def _auth_table(path: Path) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        raise UsageError(f"cannot read {path}", hint="fix the TOML syntax") from None
    table = document.get("auth", {})
    return table if isinstance(table, dict) else {}


def load_jwt_config(settings: Settings | None = None) -> JwtConfig:
    """The ``[auth] jwt_*`` settings, with the defaults above for what is not set."""
    path = (settings or Settings.from_env()).config_file
    table = _auth_table(path)
    values: dict[str, Any] = {}
    for key in ("ttl", "rotation", "leeway"):
        raw = table.get(f"jwt_{key}")
        if raw is None:
            continue
        try:
            values[key] = timedelta(0) if key == "leeway" and str(raw).strip() in ("0", "0s") else parse_ttl(raw)
        except UsageError:
            raise UsageError(f"invalid [auth] jwt_{key} in {path}", hint="a duration like 15m or 24h") from None
    for key in ("algorithm", "issuer", "audience"):
        raw = table.get(f"jwt_{key}")
        if raw is not None:
            if not isinstance(raw, str):
                raise UsageError(f"invalid [auth] jwt_{key} in {path}", hint="a string")
            values[key] = raw
    return JwtConfig(**values)
