"""SQLAlchemy 2 table definitions of the vault.

Key material is stored only as ``sealed`` bytes written by the barrier; the
database alone reveals no key. Other parts of keyguard (incidents, monitoring)
declare their tables on the same ``Base`` in modules of their own, each with
its own Alembic migration branching from ``0001``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base shared by every keyguard table."""

    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class RootKey(Base):
    """One generation of the barrier key, wrapped by the root of trust."""

    __tablename__ = "root_keys"
    generation: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    root_kind: Mapped[str] = mapped_column(String(16))
    root_params: Mapped[dict[str, Any]] = mapped_column(JSON)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # During a root rotation: this generation's key sealed under the next one (so
    # readers holding only the new root still read old rows) and under the previous
    # one (so running readers holding the old keyring follow to the new generation).
    sealed_by_next: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    sealed_by_prev: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class VaultSecret(Base):
    """Vault-internal secrets (fingerprint key, audit checkpoint key), sealed by the barrier."""

    __tablename__ = "vault_secrets"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    seal_generation: Mapped[int] = mapped_column(Integer)


class VaultCounter(Base):
    """Monotonic counters; ``state`` is bumped on every key-state change (cache invalidation)."""

    __tablename__ = "vault_counters"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class Key(Base):
    """A named key: purpose, tier, owner, rotation policy."""

    __tablename__ = "keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))
    tier: Mapped[str] = mapped_column(String(8))
    owner: Mapped[str] = mapped_column(String(128), default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    rotation_days: Mapped[int] = mapped_column(Integer, default=90)
    min_decryption_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rotated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class KeyVersion(Base):
    """One version of a key, its algorithm, state and sealed material."""

    __tablename__ = "key_versions"
    __table_args__ = (UniqueConstraint("key_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("keys.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    algorithm: Mapped[str] = mapped_column(String(24))
    state: Mapped[str] = mapped_column(String(16))
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    seal_generation: Mapped[int] = mapped_column(Integer)
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    fingerprint: Mapped[str] = mapped_column(String(80), index=True)
    origin: Mapped[str] = mapped_column(String(16), default="generated")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Client(Base):
    """A consumer of keys: a service, an operator, an auditor."""

    __tablename__ = "clients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="active")
    description: Mapped[str] = mapped_column(Text, default="")
    references: Mapped[list[str]] = mapped_column(JSON, default=list)
    totp_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ClientOtp(Base):
    """TOTP state of a client: the last accepted time step (each code once) and the lockout."""

    __tablename__ = "client_otp"
    client_id: Mapped[int] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    last_step: Mapped[int] = mapped_column(BigInteger)
    failures: Mapped[int] = mapped_column(Integer)
    window_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lockouts: Mapped[int] = mapped_column(Integer)


class Grant(Base):
    """``KEY:OP`` permissions of a client; ``key_pattern`` may be a glob."""

    __tablename__ = "grants"
    __table_args__ = (UniqueConstraint("client_id", "key_pattern", "op"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    key_pattern: Mapped[str] = mapped_column(String(64))
    op: Mapped[str] = mapped_column(String(32))


class Token(Base):
    """A bearer token of a client; only its SHA-256 is kept."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEvent(Base):
    """One hash-chained audit event (SPEC §5). ``ts`` is fixed-width RFC 3339 text."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_key_ts", "key", "ts"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts: Mapped[str] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    source_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(256), nullable=True)
    op: Mapped[str] = mapped_column(String(48))
    key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    result: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's head (single row): last id and hash, so truncation is detected.

    ``checkpoint`` is the vault's HMAC of the head and ``counter`` (bumped with
    every signature) orders heads, so an older head restored from a backup is
    told apart from the newer one by an exported checkpoint.
    """

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    checkpoint: Mapped[str] = mapped_column(String(64), default="")
    counter: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class DataItem(Base):
    """A registered ciphertext or wrapped data key and what it protects."""

    __tablename__ = "data_items"
    __table_args__ = (Index("ix_data_key_version", "key_name", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    data_class: Mapped[str] = mapped_column(String(16))
    records: Mapped[int] = mapped_column(BigInteger)
    key_name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    ciphertext: Mapped[str] = mapped_column(Text)
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
