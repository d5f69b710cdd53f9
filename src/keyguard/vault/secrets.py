"""Versioned secrets (SPEC §8): values that consumers read at start-up, sealed, granted and audited.

A secret is a name with numbered versions 1..n; ``put`` and ``rotate`` add a
version, ``get`` reads the latest (or a given) one, ``destroy`` erases one
version's value for good (metadata and audit stay).

Values are sealed with AES-256-GCM under a vault key derived (HKDF) from the
barrier-sealed vault secret, so they are protected by the root of trust like key
material and a root rotation (which re-seals vault secrets) keeps them readable
without re-sealing every row. The associated data is ``keyguard-secret:NAME:VERSION``:
a sealed value copied or swapped onto another row does not open (exit 5).

Permissions: the admin role may do everything; operators list, read and write;
auditors list. A client is given one secret with a grant ``secret:NAME:OP[,OP…]``
(NAME may be a glob; OP is ``read``, ``write``, ``destroy`` or ``*``), stored as
the pattern ``secret:NAME`` so that key grants never match a secret. Every read is
an audit event (op ``secret.read``, key ``secret:NAME``) naming the caller, so
:func:`readers_since` lists who read a leaked secret.
"""

from __future__ import annotations

import fnmatch
import os
import re
import secrets as _random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag as _CryptoInvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, func, insert, select, update

from keyguard.audit.log import format_ts
from keyguard.errors import IntegrityError, NotFoundError, PermissionDeniedError, RefusedError, UsageError
from keyguard.store.secret_tables import SecretVersionRow
from keyguard.store.tables import AuditEvent
from keyguard.vault.model import aware
from keyguard.vault.principal import SECRET_GRANT_OPS, Principal
from keyguard.vault.service import Vault

GRANT_PREFIX = "secret:"
SECRET_OPS = SECRET_GRANT_OPS
MAX_VALUE = 64 * 1024
GENERATED_BYTES = 32
# Names like keys', but short enough that ``secret:NAME`` fits the audit log's and grants' key column.
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,56}$")
_ROLE_PERMS: dict[str, frozenset[str]] = {
    "operator": frozenset({"list", "read", "write"}),
    "auditor": frozenset({"list"}),
}
_SEAL_VERSION = b"\x01"


def check_secret_name(name: str) -> None:
    """Refuse names outside ``[a-z0-9][a-z0-9._-]{0,56}``."""
    if not _NAME.match(name):
        raise UsageError(
            f"invalid secret name {name!r}",
            hint="lower-case letters, digits, '.', '_', '-'; at most 57",
        )


def audit_key(name: str) -> str:
    """The ``key`` field of a secret's audit events (never the name of a key: keys have no ':')."""
    return GRANT_PREFIX + name


def parse_secret_ref(text: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@VERSION`` → ``(name, version or None)``; UsageError otherwise."""
    name, sep, version = text.strip().partition("@")
    check_secret_name(name)
    if not sep:
        return name, None
    if not version.isdigit() or not 1 <= int(version) <= 2**31 - 1:
        raise UsageError(f"invalid secret reference {text!r}", hint="use NAME or NAME@VERSION, e.g. billing-db@2")
    return name, int(version)


def may(principal: Principal, perm: str, name: str | None = None) -> bool:
    """True when ``principal``'s role or a ``secret:`` grant allows ``perm`` (on secret ``name``)."""
    if principal.may(f"secret.{perm}") or perm in _ROLE_PERMS.get(principal.role, frozenset()):
        return True
    if name is None:
        return False
    return any(
        pattern.startswith(GRANT_PREFIX)
        and op in (perm, "*")
        and fnmatch.fnmatchcase(name, pattern[len(GRANT_PREFIX) :])
        for pattern, op in principal.grants
    )


def require(principal: Principal, perm: str, name: str | None = None) -> None:
    """Raise :class:`PermissionDeniedError` unless :func:`may`."""
    if not may(principal, perm, name):
        target = f" secret {name!r}" if name else " secrets"
        raise PermissionDeniedError(
            f"{principal.name} may not {perm}{target}",
            hint=f"grant it with --grant secret:{name or 'NAME'}:{perm}",
        )


@dataclass(frozen=True)
class SecretValue:
    """One version's value, as read (``value`` is never printed by ``repr``)."""

    name: str
    version: int
    value: bytes
    created_at: datetime

    def __repr__(self) -> str:
        return f"SecretValue(name={self.name!r}, version={self.version}, value=***)"

    def text(self) -> str:
        """The value as UTF-8 text (UsageError when it is not)."""
        try:
            return self.value.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"secret {self.name!r} version {self.version} is not UTF-8 text") from None


@dataclass(frozen=True)
class SecretInfo:
    """A secret's metadata (no value)."""

    name: str
    latest: int
    versions: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON view."""
        return {
            "name": self.name,
            "latest_version": self.latest,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "versions": self.versions,
        }


@dataclass(frozen=True)
class Reader:
    """Who read a secret in a window (from the audit log)."""

    actor: str
    source_ips: list[str]
    versions: list[int]
    reads: int
    first: str
    last: str

    def to_dict(self) -> dict[str, Any]:
        """JSON view."""
        return {
            "actor": self.actor,
            "source_ips": self.source_ips,
            "versions": self.versions,
            "reads": self.reads,
            "first": self.first,
            "last": self.last,
        }


def _aad(name: str, version: int) -> bytes:
    return f"keyguard-secret:{name}:{version}".encode()


def check_value(value: bytes) -> None:
    """Refuse empty values and values over 64 KiB."""
    if not value:
        raise UsageError("the secret value is empty", hint="pass the value on stdin")
    if len(value) > MAX_VALUE:
        raise UsageError(f"the secret value is over {MAX_VALUE} bytes")


def generate_value() -> bytes:
    """A random value: 256 bits, base64url text (safe in an environment variable)."""
    return _random.token_urlsafe(GENERATED_BYTES).encode("ascii")


class SecretStore:
    """Put, read, rotate, list and destroy versioned secrets in ``vault``'s database, audited."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.engine = vault.engine
        self._aead = AESGCM(vault.derived_key("secret-values"))

    # ------------------------------------------------------------------ sealing
    def _seal(self, name: str, version: int, value: bytes) -> bytes:
        nonce = os.urandom(12)
        return _SEAL_VERSION + nonce + self._aead.encrypt(nonce, value, _aad(name, version))

    def _open(self, name: str, version: int, sealed: bytes) -> bytes:
        if sealed[:1] != _SEAL_VERSION:
            raise IntegrityError(f"secret {name!r} version {version} does not authenticate", hint="the row was altered")
        try:
            return self._aead.decrypt(sealed[1:13], sealed[13:], _aad(name, version))
        except (_CryptoInvalidTag, ValueError):
            raise IntegrityError(
                f"secret {name!r} version {version} does not authenticate",
                hint="the database was altered (a sealed value moved between rows?)",
            ) from None

    # ------------------------------------------------------------------ writes
    def put(self, principal: Principal, name: str, value: bytes, origin: str = "put") -> int:
        """Add a new version (version 1 creates the secret); returns its number."""
        check_secret_name(name)
        check_value(value)
        op = "secret.rotate" if origin in ("rotate", "generated", "rollout") else "secret.put"
        with self.vault.audited(principal, op, audit_key(name)) as ctx:
            require(principal, "write", name)
            now = self.vault.clock.now()
            with self.vault.state_tx() as conn:
                latest = conn.execute(
                    select(func.max(SecretVersionRow.version)).where(SecretVersionRow.name == name)
                ).scalar_one()
                if latest is None and op == "secret.rotate":
                    raise NotFoundError(f"secret {name!r} not found", hint="create it with keyguard secret put")
                version = int(latest or 0) + 1
                ctx["version"] = version
                ctx["reason"] = f"{origin}: version {version}"
                conn.execute(
                    insert(SecretVersionRow).values(
                        name=name,
                        version=version,
                        state="enabled",
                        sealed=self._seal(name, version, value),
                        origin=origin,
                        created_by=principal.actor[:128],
                        created_at=now,
                    )
                )
        return version

    def rotate(self, principal: Principal, name: str, value: bytes | None = None) -> tuple[int, bytes | None]:
        """A new version of an existing secret: ``value``, or a random one when None.

        Returns ``(version, generated value or None)``.
        """
        generated = generate_value() if value is None else None
        version = self.put(principal, name, generated or value or b"", "generated" if generated else "rotate")
        return version, generated

    def destroy(self, principal: Principal, name: str, version: int) -> SecretInfo:
        """Erase one version's value (irreversible; metadata and audit stay)."""
        check_secret_name(name)
        with self.vault.audited(principal, "secret.destroy", audit_key(name), version) as ctx:
            require(principal, "destroy", name)
            self.vault.require_mfa(principal, "secret.destroy")
            with self.vault.state_tx() as conn:
                row = conn.execute(
                    select(SecretVersionRow.state).where(
                        SecretVersionRow.name == name, SecretVersionRow.version == version
                    )
                ).first()
                if row is None:
                    raise NotFoundError(f"secret {name!r} has no version {version}")
                if row.state == "destroyed":
                    ctx["reason"] = "already destroyed"
                else:
                    conn.execute(
                        update(SecretVersionRow)
                        .where(SecretVersionRow.name == name, SecretVersionRow.version == version)
                        .values(state="destroyed", sealed=None, destroyed_at=self.vault.clock.now())
                    )
                    ctx["reason"] = "value erased"
        return self.info(name)

    # ------------------------------------------------------------------ reads
    def get(self, principal: Principal, name: str, version: int | None = None, purpose: str = "get") -> SecretValue:
        """The value of ``version`` (latest when None); the read is audited before it is returned."""
        check_secret_name(name)
        with self.vault.audited(principal, "secret.read", audit_key(name), version) as ctx:
            require(principal, "read", name)
            ctx["reason"] = purpose
            query = select(SecretVersionRow).where(SecretVersionRow.name == name)
            if version is None:
                query = query.order_by(SecretVersionRow.version.desc()).limit(1)
            else:
                query = query.where(SecretVersionRow.version == version)
            with self.engine.connect() as conn:
                row = conn.execute(query).first()
            if row is None:
                what = f"secret {name!r}" if version is None else f"secret {name!r} version {version}"
                raise NotFoundError(f"{what} not found", hint="keyguard secret list shows the secrets")
            ctx["version"] = row.version
            if row.state == "destroyed" or row.sealed is None:
                raise RefusedError(
                    f"version {row.version} of secret {name!r} is destroyed",
                    hint="write a new version with keyguard secret rotate",
                )
            value = self._open(name, row.version, row.sealed)
        return SecretValue(name, row.version, value, aware(row.created_at) or row.created_at)

    def info(self, name: str) -> SecretInfo:
        """Metadata of one secret (no audit event: no value is read)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    SecretVersionRow.version,
                    SecretVersionRow.state,
                    SecretVersionRow.origin,
                    SecretVersionRow.created_by,
                    SecretVersionRow.created_at,
                    SecretVersionRow.destroyed_at,
                )
                .where(SecretVersionRow.name == name)
                .order_by(SecretVersionRow.version)
            ).all()
        if not rows:
            raise NotFoundError(f"secret {name!r} not found", hint="keyguard secret list shows the secrets")
        versions = [
            {
                "version": r.version,
                "state": r.state,
                "origin": r.origin,
                "created_by": r.created_by,
                "created_at": aware(r.created_at),
                "destroyed_at": aware(r.destroyed_at),
            }
            for r in rows
        ]
        return SecretInfo(name, rows[-1].version, versions, versions[0]["created_at"], versions[-1]["created_at"])

    def list(self, principal: Principal) -> list[SecretInfo]:
        """Every secret the caller may list or read (metadata only), audited."""
        with self.vault.audited(principal, "secret.list", None) as ctx:
            with self.engine.connect() as conn:
                names = conn.execute(select(SecretVersionRow.name).distinct().order_by(SecretVersionRow.name)).scalars()
                visible = [n for n in names if may(principal, "list") or may(principal, "read", n)]
            if not visible and not may(principal, "list"):
                require(principal, "list")
            ctx["reason"] = f"{len(visible)} secrets"
        return [self.info(n) for n in visible]


def readers_since(engine: Engine, name: str, since: datetime | None = None) -> list[Reader]:
    """Every principal that read secret ``name`` (successfully) since ``since``, from the audit log.

    For the assessment of a leaked secret: who held the value after it was exposed.
    """
    query = (
        select(
            AuditEvent.actor,
            AuditEvent.source_ip,
            AuditEvent.version,
            func.count().label("n"),
            func.min(AuditEvent.ts).label("first"),
            func.max(AuditEvent.ts).label("last"),
        )
        .where(AuditEvent.key == audit_key(name), AuditEvent.op == "secret.read", AuditEvent.result == "ok")
        .group_by(AuditEvent.actor, AuditEvent.source_ip, AuditEvent.version)
    )
    if since is not None:
        query = query.where(AuditEvent.ts >= format_ts(since))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    merged: dict[str, dict[str, Any]] = {}
    for r in rows:
        item = merged.setdefault(r.actor, {"ips": set(), "versions": set(), "n": 0, "first": r.first, "last": r.last})
        if r.source_ip:
            item["ips"].add(r.source_ip)
        if r.version is not None:
            item["versions"].add(int(r.version))
        item["n"] += int(r.n)
        item["first"] = min(item["first"], r.first)
        item["last"] = max(item["last"], r.last)
    return [
        Reader(actor, sorted(v["ips"]), sorted(v["versions"]), v["n"], v["first"], v["last"])
        for actor, v in sorted(merged.items())
    ]
