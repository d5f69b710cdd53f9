"""Dynamic credentials with leases (SPEC §8): ``creds issue``, ``lease list/renew/revoke``, expiry.

A path ``CONNECTOR/role/ROLE`` names a ``[connectors.CONNECTOR.roles.ROLE]`` table. Issuing
writes the lease (``pending``) first, then creates the user, then marks the lease
``active`` together with its audit event: a crash at any point leaves either nothing or a
pending lease whose user :meth:`LeaseManager.reap` drops. Ending a lease drops the user
first and records the end after, so a crash in between is finished by the next reap
(dropping is idempotent). Every change is one event of the hash-chained audit log,
written in the same transaction as the lease's new state.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, insert, or_, select, update

from keyguard.audit.log import AuditLog, EventDraft, write_error
from keyguard.clock import Clock, SystemClock, as_utc, format_span, format_time, parse_span
from keyguard.connectors.audited import audit_key
from keyguard.connectors.config import ConnectorConfig, SecretSource
from keyguard.connectors.errors import UnknownReferenceError
from keyguard.connectors.refs import NAME_RE, Ref
from keyguard.connectors.secret import Secret
from keyguard.errors import ConflictError, KeyguardError, NotFoundError, UsageError
from keyguard.store.db import write_tx
from keyguard.store.lease_tables import Lease

DEFAULT_TTL = timedelta(hours=1)
DEFAULT_MAX_TTL = timedelta(hours=24)
#: A pending lease older than this was never confirmed: its issuer died or failed.
PENDING_GRACE = timedelta(seconds=60)
LIVE = ("pending", "active")
REAPER = "keyguard:scheduler"


class Backend(Protocol):
    """What a dynamic-credential backend does (PostgreSQL role, Redis ACL user)."""

    backend: str

    def create(self, username: str, password: Secret, valid_until: datetime) -> None: ...
    def extend(self, username: str, valid_until: datetime) -> None: ...
    def exists(self, username: str) -> bool: ...
    def drop(self, username: str) -> int: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class RoleSpec:
    """One configured credential role."""

    connector: str
    role: str
    backend: str
    settings: dict[str, str]
    default_ttl: timedelta
    max_ttl: timedelta

    @property
    def path(self) -> str:
        """``CONNECTOR/role/ROLE``."""
        return f"{self.connector}/role/{self.role}"


@dataclass
class Issued:
    """A new credential: the password is in here once and nowhere else."""

    lease_id: str
    username: str
    password: Secret = field(repr=False)
    expires_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """SPEC §8's shape (the one place the password is revealed)."""
        return {"lease_id": self.lease_id, "username": self.username, "password": self.password.reveal(),
                "expires_at": format_time(self.expires_at)}


def lease_dict(row: Any) -> dict[str, Any]:
    """The JSON view of a lease row (no secret: none is stored)."""
    def at(value: datetime | None) -> str | None:
        return None if value is None else format_time(as_utc(value))

    return {"lease_id": row.id, "path": row.path, "username": row.username, "state": row.state,
            "issued_at": at(row.issued_at), "expires_at": at(row.expires_at),
            "max_expires_at": at(row.max_expires_at), "revoked_at": at(row.revoked_at), "actor": row.actor,
            "detail": row.detail}


def lease_window(engine: Engine, username: str) -> dict[str, Any] | None:
    """The lease of the dynamic credential ``username`` (issued_at, expires_at, revoked_at), or None."""
    with engine.connect() as conn:
        row = conn.execute(select(Lease).where(Lease.username == username)).first()
    return None if row is None else lease_dict(row)


def parse_path(path: str) -> tuple[str, str]:
    """``pg/role/readonly`` → (``pg``, ``readonly``); UsageError for anything else."""
    parts = path.strip().strip("/").split("/")
    if len(parts) != 3 or parts[1] != "role" or not NAME_RE.match(parts[0]) or not NAME_RE.match(parts[2]):
        raise UsageError(f"invalid credential path {path!r}", hint="use CONNECTOR/role/ROLE like pg/role/readonly")
    return parts[0], parts[2]


def new_username(role: str) -> str:
    """``kg_<role>_<random>``: at most 63 characters, safe as a PostgreSQL and Redis name."""
    stem = re.sub(r"[^a-z0-9_]", "_", role)[:40]
    return f"kg_{stem}_{secrets.token_hex(6)}"


def open_backend(config: ConnectorConfig, spec: RoleSpec, environ: Mapping[str, str] | None = None,
                 source: SecretSource | None = None) -> Backend:
    """The backend of ``spec`` over the connector's admin connection (client library loaded now)."""
    if config.type == "postgresql":
        from keyguard.connectors.dynamic_pg import PgDynamic
        from keyguard.connectors.postgres_role import PostgresAdmin

        return PgDynamic(PostgresAdmin(config, environ=environ, source=source), spec.settings["template"])
    from keyguard.connectors.dynamic_redis import RedisDynamic
    from keyguard.connectors.redis_user import RedisAdmin

    return RedisDynamic(RedisAdmin(config, environ=environ, source=source), spec.settings.get("template"),
                        spec.settings.get("rules"))


@dataclass
class ReapReport:
    """What one pass of the reaper did."""

    expired: list[str] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class LeaseManager:
    """Leases over the configured connectors, audited in ``audit``."""

    def __init__(self, engine: Engine, audit: AuditLog, connectors: Mapping[str, ConnectorConfig], *,
                 clock: Clock | None = None, environ: Mapping[str, str] | None = None,
                 source: SecretSource | None = None, pending_grace: timedelta = PENDING_GRACE,
                 backend_factory: Callable[[ConnectorConfig, RoleSpec], Backend] | None = None) -> None:
        self.engine = engine
        self.audit = audit
        self.connectors = dict(connectors)
        self.clock = clock or SystemClock()
        self.pending_grace = pending_grace
        self._factory = backend_factory or (lambda c, s: open_backend(c, s, environ, source))
        self._backends: dict[str, Backend] = {}

    # ------------------------------------------------------------------ configuration
    def spec(self, path: str) -> RoleSpec:
        """The configured role of ``path``; a clear error naming what is configured otherwise."""
        connector, role = parse_path(path)
        config = self.connectors.get(connector)
        if config is None:
            raise UnknownReferenceError(f"unknown connector {connector!r} in {path}",
                                        hint="configured: " + (", ".join(sorted(self.connectors)) or "none"))
        settings = config.roles.get(role)
        if settings is None:
            raise UnknownReferenceError(f"connector {connector!r} has no role {role!r}",
                                        hint=f"add [connectors.{connector}.roles.{role}] with a template")
        default = parse_span(settings.get("default_ttl", format_span(DEFAULT_TTL)), "default_ttl")
        maximum = parse_span(settings.get("max_ttl", format_span(max(DEFAULT_MAX_TTL, default))), "max_ttl")
        return RoleSpec(connector, role, config.type, settings, min(default, maximum), maximum)

    def _backend(self, spec: RoleSpec) -> Backend:
        backend = self._backends.get(spec.path)
        if backend is None:
            backend = self._backends[spec.path] = self._factory(self.connectors[spec.connector], spec)
        return backend

    def _backend_of(self, row: Any) -> Backend:
        return self._backend(self.spec(row.path))

    def close(self) -> None:
        """Close the backends' connections."""
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()

    # ------------------------------------------------------------------ audit
    @contextmanager
    def _audited_tx(self, actor: str, op: str, path: str, reason: str) -> Iterator[tuple[Connection, dict[str, str]]]:
        """A write transaction whose audit event commits with it (``ctx['reason']`` may be changed inside)."""
        ctx = {"reason": reason}
        key = _audit_key(path)
        with write_tx(self.engine) as conn:
            try:
                self.audit.lock_head(conn)
            except Exception as exc:
                raise write_error(exc) from None
            yield conn, ctx
            try:
                _record, counter = self.audit.append_in(
                    conn, EventDraft(actor=actor, op=op, result="ok", key=key, reason=ctx["reason"],
                                     ts=self.clock.now()))
            except Exception as exc:
                raise write_error(exc) from None
        self.audit.committed(counter)

    def _record_failure(self, actor: str, op: str, path: str, reason: str) -> None:
        self.audit.append(EventDraft(actor=actor, op=op, result="error", key=_audit_key(path), reason=reason,
                                     ts=self.clock.now()))

    # ------------------------------------------------------------------ issue
    def issue(self, path: str, ttl: timedelta | None, actor: str) -> Issued:
        """Record the lease, create the user, confirm both with the audit event; return the password once."""
        spec = self.spec(path)
        ttl = ttl or spec.default_ttl
        if ttl > spec.max_ttl:
            raise UsageError(f"ttl {format_span(ttl)} is above the role's max_ttl {format_span(spec.max_ttl)}",
                             hint="ask for less or raise max_ttl in keyguard.toml")
        now = self.clock.now()
        lease_id = f"{spec.path}/{secrets.token_hex(8)}"
        username = new_username(spec.role)
        expires = now + ttl
        with write_tx(self.engine) as conn:
            conn.execute(insert(Lease).values(
                id=lease_id, path=spec.path, connector=spec.connector, role=spec.role, backend=spec.backend,
                username=username, state="pending", actor=actor[:256], issued_at=now, expires_at=expires,
                max_expires_at=now + spec.max_ttl, updated_at=now, attempts=0, detail=""))
        backend = self._backend(spec)
        password = Secret(secrets.token_urlsafe(32))
        try:
            backend.create(username, password, expires)
        except KeyguardError as exc:
            self._abandon(backend, lease_id, username, exc.message)
            self._record_failure(actor, "lease.issue", spec.path, f"{lease_id}: {exc.message}")
            raise
        except Exception as exc:
            self._abandon(backend, lease_id, username, type(exc).__name__)
            self._record_failure(actor, "lease.issue", spec.path, f"{lease_id}: internal error")
            raise
        reason = f"{lease_id}: user {username} until {format_time(expires)} (ttl {format_span(ttl)})"
        try:
            with self._audited_tx(actor, "lease.issue", spec.path, reason) as (conn, _ctx):
                done = conn.execute(update(Lease).where(Lease.id == lease_id, Lease.state == "pending")
                                    .values(state="active", updated_at=self.clock.now())).rowcount
                if not done:
                    raise ConflictError(f"lease {lease_id} was cleaned up before it was confirmed",
                                        hint="issue a new credential")
        except Exception:
            # not confirmed (audit refused, database gone): nobody gets the password, so the user goes now
            # (or, if even that fails, with the reaper's cleanup of the pending lease)
            self._abandon(backend, lease_id, username, "issue not confirmed")
            raise
        return Issued(lease_id, username, password, expires)

    def _abandon(self, backend: Backend, lease_id: str, username: str, why: str) -> None:
        """A user that may have been half-created is dropped; the lease is marked failed (best effort)."""
        try:
            backend.drop(username)
            state = "failed"
        except Exception:  # noqa: BLE001 - the reaper retries a pending lease
            state = "pending"
        try:
            with write_tx(self.engine) as conn:
                conn.execute(update(Lease).where(Lease.id == lease_id, Lease.state.in_(LIVE))
                             .values(state=state, detail=why[:500], updated_at=self.clock.now()))
        except Exception:  # noqa: BLE001, S110 - the database is gone: the pending row is the reaper's
            pass

    # ------------------------------------------------------------------ read
    def get(self, lease_id: str) -> dict[str, Any]:
        """One lease, or NotFoundError."""
        with self.engine.connect() as conn:
            row = conn.execute(select(Lease).where(Lease.id == lease_id)).first()
        if row is None:
            raise NotFoundError(f"lease {lease_id!r} not found", hint="keyguard lease list shows the leases")
        return lease_dict(row)

    def list_leases(self, prefix: str | None = None, *, all_states: bool = False) -> list[dict[str, Any]]:
        """Leases (live ones unless ``all_states``), optionally under a path prefix, oldest first."""
        query = select(Lease).order_by(Lease.issued_at, Lease.id)
        if not all_states:
            query = query.where(Lease.state.in_(LIVE))
        if prefix:
            query = query.where(or_(Lease.id == prefix, Lease.id.startswith(prefix.rstrip("/") + "/")))
        with self.engine.connect() as conn:
            return [lease_dict(r) for r in conn.execute(query).all()]

    def window(self, username: str) -> dict[str, Any] | None:
        """When the credential ``username`` could be used: issued_at, expires_at, revoked_at (or None)."""
        return lease_window(self.engine, username)

    # ------------------------------------------------------------------ renew
    def renew(self, lease_id: str, ttl: timedelta | None, actor: str) -> dict[str, Any]:
        """Move the expiry to now + ``ttl``, never past the lease's maximum."""
        with self.engine.connect() as conn:
            row = conn.execute(select(Lease).where(Lease.id == lease_id)).first()
        if row is None:
            raise NotFoundError(f"lease {lease_id!r} not found", hint="keyguard lease list shows the leases")
        now = self.clock.now()
        if row.state != "active" or as_utc(row.expires_at) <= now:
            raise ConflictError(f"lease {lease_id} is {row.state if row.state != 'active' else 'expired'}",
                                hint="issue a new credential")
        spec = self.spec(row.path)
        limit = as_utc(row.max_expires_at)
        expires = min(now + (ttl or spec.default_ttl), limit)
        self._backend(spec).extend(row.username, expires)
        capped = " (capped at max_ttl)" if expires == limit else ""
        reason = f"{lease_id}: until {format_time(expires)}{capped}"
        with self._audited_tx(actor, "lease.renew", row.path, reason) as (conn, _ctx):
            done = conn.execute(update(Lease).where(Lease.id == lease_id, Lease.state == "active")
                                .values(expires_at=expires, updated_at=now)).rowcount
            if not done:
                raise ConflictError(f"lease {lease_id} ended meanwhile")
        return self.get(lease_id)

    # ------------------------------------------------------------------ end
    def _end(self, row: Any, state: str, op: str, actor: str, why: str) -> bool:
        """Drop the user, then record the end (once: a lease another caller ended is skipped)."""
        try:
            sessions = self._backend_of(row).drop(row.username)
        except KeyguardError as exc:
            with write_tx(self.engine) as conn:
                conn.execute(update(Lease).where(Lease.id == row.id).values(
                    attempts=Lease.attempts + 1, detail=exc.message[:500], updated_at=self.clock.now()))
            if row.attempts % 60 == 0:  # the reaper retries every second: not one event per try
                self._record_failure(actor, op, row.path, f"{row.id}: user {row.username} not dropped: {exc.message}")
            raise
        now = self.clock.now()
        reason = f"{row.id}: user {row.username} dropped, {sessions} session(s) ended ({why})"
        ended = 0
        with self._audited_tx(actor, op, row.path, reason) as (conn, ctx):
            ended = conn.execute(update(Lease).where(Lease.id == row.id, Lease.state.in_(LIVE)).values(
                state=state, revoked_at=now, updated_at=now, detail=why[:500])).rowcount
            if not ended:
                raise _AlreadyEnded
            ctx["reason"] = reason
        return bool(ended)

    def _end_quietly(self, row: Any, state: str, op: str, actor: str, why: str) -> bool:
        try:
            return self._end(row, state, op, actor, why)
        except _AlreadyEnded:
            return False

    def revoke(self, lease_id: str, actor: str) -> dict[str, Any]:
        """Drop the lease's user and its sessions now."""
        with self.engine.connect() as conn:
            row = conn.execute(select(Lease).where(Lease.id == lease_id)).first()
        if row is None:
            raise NotFoundError(f"lease {lease_id!r} not found", hint="keyguard lease list shows the leases")
        if row.state in LIVE:
            self._end_quietly(row, "revoked", "lease.revoke", actor, "revoked")
        return self.get(lease_id)

    def revoke_prefix(self, prefix: str, actor: str) -> list[dict[str, Any]]:
        """Revoke every live lease under ``prefix`` (``pg/role/readonly``): containment of a leaked lease."""
        if not prefix.strip("/"):
            raise UsageError("an empty prefix would revoke every lease", hint="give CONNECTOR/role/ROLE")
        rows = self._rows(or_(Lease.id == prefix, Lease.id.startswith(prefix.rstrip("/") + "/")))
        done: list[dict[str, Any]] = []
        for row in rows:
            if self._end_quietly(row, "revoked", "lease.revoke", actor, f"revoked with prefix {prefix}"):
                done.append(self.get(row.id))
        return done

    def _rows(self, *where: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(Lease).where(Lease.state.in_(LIVE), *where).order_by(Lease.expires_at)))

    # ------------------------------------------------------------------ expiry
    def next_expiry(self) -> datetime | None:
        """The earliest expiry of a live lease (the reaper sleeps until then)."""
        rows = self._rows()
        return min((as_utc(r.expires_at) for r in rows), default=None)

    def reap(self, actor: str = REAPER) -> ReapReport:
        """Drop the users of expired leases and of pending leases never confirmed; failures are retried later."""
        now = self.clock.now()
        report = ReapReport()
        for row in self._rows(Lease.state == "active", Lease.expires_at <= now):
            self._reap_one(row, "expired", "lease.expire", actor, "expired", report.expired, report)
        for row in self._rows(Lease.state == "pending", Lease.updated_at <= now - self.pending_grace):
            self._reap_one(row, "failed", "lease.cleanup", actor, "issue never confirmed", report.cleaned, report)
        return report

    def _reap_one(self, row: Any, state: str, op: str, actor: str, why: str, into: list[str],
                  report: ReapReport) -> None:
        if row.attempts and as_utc(row.updated_at) > self.clock.now() - _backoff(row.attempts):
            report.failed.append(row.id)  # the system refused lately: try again a little later
            return
        try:
            if self._end_quietly(row, state, op, actor, why):
                into.append(row.id)
        except KeyguardError:
            report.failed.append(row.id)


def _audit_key(path: str) -> str:
    """``CONNECTOR/role/ROLE`` as it fits ``audit_events.key``."""
    connector, _, role = path.split("/", 2)
    return audit_key(Ref(connector, "role", role))


def _backoff(attempts: int) -> timedelta:
    """1 s, 2 s, 4 s … at most 5 minutes between tries at a user that could not be dropped."""
    return timedelta(seconds=min(2 ** min(attempts - 1, 9), 300))


class _AlreadyEnded(Exception):
    """Another caller ended the lease first: nothing to record."""
