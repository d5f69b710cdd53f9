"""The vault's cached view of keys and versions, and the small helpers its modules share."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from keyguard.clock import as_utc
from keyguard.crypto import algorithms as alg
from keyguard.errors import UsageError
from keyguard.vault.lifecycle import VersionState

DESTRUCTIVE_OPS = frozenset({"key.compromise", "key.destroy"})
TIERS = ("high", "medium", "low")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def check_name(name: str, what: str = "key") -> None:
    """Refuse names outside ``[a-z0-9][a-z0-9._-]{0,63}``."""
    if not _NAME.match(name):
        raise UsageError(
            f"invalid {what} name {name!r}",
            hint="lower-case letters, digits, '.', '_', '-'; at most 64",
        )


@dataclass
class VersionInfo:
    """A cached key version."""

    version: int
    algorithm: str
    state: str
    seal_generation: int
    sealed: bytes | None
    public_key: bytes | None
    fingerprint: str
    created_at: datetime
    state_changed_at: datetime
    last_used_at: datetime | None
    origin: str
    loaded: alg.LoadedKey | None = None


@dataclass
class KeyInfo:
    """A cached key with its versions."""

    id: int
    name: str
    purpose: str
    tier: str
    owner: str
    tags: list[str]
    rotation_days: int
    min_decryption_version: int
    created_at: datetime
    rotated_at: datetime
    last_used_at: datetime | None
    versions: dict[int, VersionInfo] = field(default_factory=dict)

    @property
    def latest(self) -> int:
        """Highest version number."""
        return max(self.versions)

    @functools.cached_property
    def is_symmetric(self) -> bool:
        """Every version is a secret-key algorithm (cheap enough to run on an event loop)."""
        return not any(alg.ALGORITHMS[v.algorithm].asymmetric for v in self.versions.values())

    @property
    def active(self) -> VersionInfo | None:
        """The active version, if any."""
        for info in self.versions.values():
            if info.state == VersionState.ACTIVE:
                return info
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON view (no key material)."""
        active = self.active
        return {
            "name": self.name,
            "purpose": self.purpose,
            "tier": self.tier,
            "owner": self.owner,
            "tags": self.tags,
            "rotation_days": self.rotation_days,
            "min_decryption_version": self.min_decryption_version,
            "active_version": active.version if active else None,
            "latest_version": self.latest,
            "algorithm": self.versions[self.latest].algorithm,
            "created_at": self.created_at,
            "rotated_at": self.rotated_at,
            "last_used_at": self.last_used_at,
            "versions": [
                {
                    "version": v.version,
                    "algorithm": v.algorithm,
                    "state": v.state,
                    "fingerprint": v.fingerprint,
                    "origin": v.origin,
                    "created_at": v.created_at,
                    "state_changed_at": v.state_changed_at,
                    "last_used_at": v.last_used_at,
                }
                for v in sorted(self.versions.values(), key=lambda v: v.version)
            ],
        }


def aware(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (None stays None)."""
    return None if value is None else as_utc(value)


def sealed_aad(key_id: int, version: int, algorithm: str) -> bytes:
    """The associated data that binds sealed key material to its key, version and algorithm."""
    return f"keyguard-key:{key_id}:{version}:{algorithm}".encode()


def check_tier(tier: str) -> None:
    """Refuse tiers other than high, medium and low."""
    if tier not in TIERS:
        raise UsageError(f"unknown tier {tier!r}", hint="one of high, medium, low")


def hash_token(token: str) -> str:
    """SHA-256 of a bearer token (tokens are 256-bit random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def json_dumps(value: Any) -> str:
    """Compact JSON."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
