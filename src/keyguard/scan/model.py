"""Plain data shared by the scanner: findings and the provenance of scanned content."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a piece of scanned content came from (a file, an archive member, a git blob)."""

    path: str
    commit: str | None = None
    author: str | None = None
    email: str | None = None
    date: str | None = None


@dataclass(slots=True)
class Finding:
    """One detected secret (SPEC §5). ``secret`` holds the raw value in memory only."""

    rule: str
    description: str
    severity: str
    file: str
    line: int
    column: int
    secret: str
    entropy: float
    tags: tuple[str, ...] = ()
    end_column: int = 0
    commit: str | None = None
    author: str | None = None
    email: str | None = None
    date: str | None = None
    managed_key: dict[str, Any] | None = None
    blob: str | None = None
    resource: str | None = None  # the SPEC §7 reference of the owner, filled by ``scan --identify``
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def secret_sha256(self) -> str:
        """SHA-256 of the secret: the stable identity used by baselines."""
        return hashlib.sha256(self.secret.encode("utf-8", "surrogateescape")).hexdigest()

    @property
    def fingerprint(self) -> str:
        """Stable identity of the finding: rule, path and hashed secret (not the line)."""
        material = f"{self.rule}\0{self.file}\0{self.secret_sha256}".encode()
        return hashlib.sha256(material).hexdigest()[:32]

    def redacted(self) -> str:
        """The secret with everything but a short prefix masked."""
        return redact(self.secret)

    def to_record(self, *, show_secret: bool = False) -> dict[str, Any]:
        """The SPEC §5 JSON record."""
        return {
            "rule": self.rule,
            "description": self.description,
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "commit": self.commit,
            "author": self.author,
            "email": self.email,
            "date": self.date,
            "secret": self.secret if show_secret else self.redacted(),
            "fingerprint": self.fingerprint,
            "entropy": round(self.entropy, 3),
            "managed_key": self.managed_key,
            "resource": self.resource,
        }


def redact(secret: str) -> str:
    """Mask a secret, keeping at most a 4-character prefix of long values."""
    if len(secret) >= 20:
        return secret[:4] + "*" * 8
    return "*" * 8
