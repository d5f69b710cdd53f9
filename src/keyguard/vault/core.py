"""The vault's base: opening, vault secrets, the key-state cache and its watcher, the audit wrapper.

Reads of key state are served from an in-process cache that is invalidated by a
counter bumped in the same transaction as every state change. On PostgreSQL
the change is also announced with ``NOTIFY keyguard_state`` so that every API
node drops its cache within milliseconds; a background watcher on SQLite polls
the counter (a single row) instead of reading key state on every request.

Containment across nodes is the time from a change's commit to the other
nodes refusing. The notification names what changed: ``key:NAME`` for a key,
``key:NAME:VERSION:STATE`` for a version that was blocked (disabled,
compromised, destroyed). A node applies a block to its cached entry at once,
without a database read (a payload can only ever make the cache stricter:
anything else is read back from the database), then reloads the key on the
watcher's thread; its token cache stays (no principal changed). A load that
raced an invalidation is never cached (the cache's generation moved on).

The key-management, crypto-operation and import mixins build on :class:`VaultCore`;
:class:`keyguard.vault.service.Vault` composes them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Self

from sqlalchemy import Connection, Engine, func, insert, select, text, update
from sqlalchemy.orm import Session

from keyguard.audit.log import AuditLog, EventDraft, write_error
from keyguard.clock import Clock, SystemClock
from keyguard.crypto import algorithms as alg
from keyguard.errors import (
    AuditWriteError,
    ConflictError,
    IntegrityError,
    KeyguardError,
    KeyStateError,
    MfaRequiredError,
    NotFoundError,
    RefusedError,
)
from keyguard.store.db import write_tx
from keyguard.store.tables import Key, KeyVersion, RootKey, VaultCounter, VaultSecret
from keyguard.vault.barrier import Barrier, chain_open, open_barrier
from keyguard.vault.lifecycle import BLOCKED, VersionState
from keyguard.vault.model import KeyInfo, VersionInfo, aware, check_name, sealed_aad
from keyguard.vault.principal import Principal
from keyguard.vault.roots import RootOfTrust

# The ``ctx`` of the innermost :meth:`VaultCore.audited` block, for :meth:`VaultCore.state_tx`.
_audit_ctx: ContextVar[dict[str, Any] | None] = ContextVar("keyguard_audit_ctx", default=None)


class VaultCore:
    """Construction, vault secrets, the key-state cache and the audit wrapper every operation runs in."""

    def __init__(self, engine: Engine, barrier: Barrier, clock: Clock | None = None) -> None:
        self.engine = engine
        self.barrier = barrier
        self.clock = clock or SystemClock()
        self._secrets = self._load_secrets()
        self.audit = AuditLog(engine, self._secrets["audit-checkpoint"])
        self._cache: dict[str, KeyInfo] = {}
        self._cache_lock = threading.Lock()
        self._cache_generation = 0  # moves on at every invalidation: a load that raced one is not cached
        self._state_seen = -1
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self.mfa_required = os.environ.get("KEYGUARD_MFA", "") == "required"
        self.tripwire_hooks: list[Callable[[Principal, str, int, str], None]] = []
        self.state_hooks: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ opening
    @classmethod
    def initialize(cls, engine: Engine, root: RootOfTrust, clock: Clock | None = None) -> Self:
        """Create the barrier key, wrap it with ``root`` and create vault secrets."""
        clock = clock or SystemClock()
        barrier_key = os.urandom(32)
        with write_tx(engine) as conn:
            if conn.execute(select(func.count()).select_from(RootKey)).scalar_one():
                raise ConflictError(
                    "the vault is already initialised",
                    hint="use keyguard init --rotate-root to change the root",
                )
            conn.execute(
                insert(RootKey).values(
                    generation=1,
                    root_kind=root.kind,
                    root_params=root.params(),
                    wrapped_key=root.wrap(barrier_key),
                    created_at=clock.now(),
                )
            )
            barrier = Barrier({1: barrier_key})
            for name in ("fingerprint", "audit-checkpoint"):
                gen, sealed = barrier.seal(os.urandom(32), f"vault-secret:{name}".encode())
                conn.execute(insert(VaultSecret).values(name=name, sealed=sealed, seal_generation=gen))
        return cls(engine, barrier, clock)

    @classmethod
    def open(cls, engine: Engine, root: RootOfTrust | None = None, clock: Clock | None = None) -> Self:
        """Open an initialised vault (the root comes from the environment when not given)."""
        return cls(engine, open_barrier(engine, root), clock)

    def _load_secrets(self) -> dict[str, bytes]:
        with Session(self.engine) as session:
            rows = session.scalars(select(VaultSecret)).all()
            return {
                row.name: self.barrier.unseal(row.seal_generation, row.sealed, f"vault-secret:{row.name}".encode())
                for row in rows
            }

    @property
    def fingerprint_key(self) -> bytes:
        """Vault-internal key for secret-key fingerprints (never leaves the process)."""
        return self._secrets["fingerprint"]

    def derived_key(self, purpose: str) -> bytes:
        """A 256-bit key for ``purpose``, derived (HKDF-SHA256) from a sealed vault secret: never stored."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"keyguard:{purpose}".encode()).derive(
            self._secrets["fingerprint"]
        )

    @property
    def checkpoint_key(self) -> bytes:
        """Vault-internal key that authenticates the audit chain's head."""
        return self._secrets["audit-checkpoint"]

    def start_watcher(self, interval: float = 0.005) -> None:
        """Keep the state cache fresh across processes and nodes (serve mode).

        On SQLite the state counter is polled every ``interval`` (one single-row read
        on a connection kept for it: ~20 µs); on PostgreSQL ``interval`` is only the
        pause before reconnecting the listener.
        """
        if self._watcher is not None:
            return
        target = self._listen if self.engine.dialect.name == "postgresql" else self._poll
        self._watcher = threading.Thread(target=target, args=(interval,), name="keyguard-state-watch", daemon=True)
        self._watcher.start()

    def stop_watcher(self) -> None:
        """Stop the background watcher."""
        self._stop.set()

    def _poll(self, interval: float) -> None:
        raw: Any = None
        while not self._stop.wait(interval):
            try:
                if raw is None:
                    raw = self.engine.raw_connection()
                cursor = raw.cursor()
                try:
                    cursor.execute("SELECT value FROM vault_counters WHERE name = 'state'")
                    rows = cursor.fetchall()  # exhausted at once: no read snapshot stays open
                finally:
                    cursor.close()
                raw.rollback()
                if rows and rows[0][0] != self._state_seen:
                    self._state_seen = rows[0][0]
                    self._reload(self._invalidate())
            except Exception:  # noqa: BLE001 - keep watching on a fresh connection; the next poll retries
                if raw is not None:
                    raw.close()
                raw = None
        if raw is not None:
            raw.close()

    def _listen(self, interval: float) -> None:
        import psycopg

        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("LISTEN keyguard_state")
                    self._invalidate()  # what changed while no one listened
                    while not self._stop.is_set():
                        # The timeout only re-checks the stop flag: the connection (and LISTEN) stays.
                        for note in conn.notifies(timeout=1.0, stop_after=None):
                            self._notified(note.payload)
                            if self._stop.is_set():
                                return
            except Exception:  # noqa: BLE001 - reconnect after a pause, dropping the cache
                self._invalidate()
                self._stop.wait(interval)

    def _refresh_if_changed(self) -> None:
        with self.engine.connect() as conn:
            value = conn.execute(select(VaultCounter.value).where(VaultCounter.name == "state")).scalar_one()
        if value != self._state_seen:
            self._state_seen = value
            self._invalidate()

    def _notified(self, payload: str) -> None:
        """A change committed elsewhere: apply or drop what it touched, then reload it (watcher thread)."""
        kind, _, rest = payload.partition(":")
        if kind != "key":
            self._reload(self._invalidate())
            return
        name, _, change = rest.partition(":")
        with self._cache_lock:
            self._cache_generation += 1
            info = self._cache.get(name)
            if info is None:
                return
            if not self._block(info, change):
                del self._cache[name]  # the next request reads it, unless the reload below is first
        self._reload([name])

    @staticmethod
    def _block(info: KeyInfo, change: str) -> bool:
        """Apply ``VERSION:STATE`` to the cached ``info`` if it blocks the version; False when it does not."""
        number, _, state = change.partition(":")
        v = info.versions.get(int(number)) if number.isdigit() else None
        if v is None or state not in BLOCKED:
            return False
        v.state = state
        if state == VersionState.DESTROYED:
            v.loaded = None
            v.sealed = None
        return True

    def _reload(self, names: list[str]) -> None:
        """Read ``names`` from the database into the cache, so the next request finds the new state there."""
        for name in names:
            try:
                self._load_key(name)
            except Exception:  # noqa: BLE001,S112 - gone or unreachable: the next request reads it itself
                continue

    def _invalidate(self) -> list[str]:
        """Drop every cached key and principal; returns the names of the keys that were cached."""
        with self._cache_lock:
            names = list(self._cache)
            self._cache.clear()
            self._cache_generation += 1
        for hook in self.state_hooks:
            hook()
        return names

    def bump_state(self, conn: Connection, key: str | None = None, version: int | None = None, state: str = "") -> None:
        """Note a state change in ``conn``'s transaction.

        ``key`` names the only key it touched, if so; ``version`` and ``state``
        the version's new state, when that is all that changed.
        """
        conn.execute(update(VaultCounter).where(VaultCounter.name == "state").values(value=VaultCounter.value + 1))
        if self.engine.dialect.name == "postgresql":
            payload = "changed" if not key else f"key:{key}:{version}:{state}" if version else f"key:{key}"
            conn.execute(text("SELECT pg_notify('keyguard_state', :payload)"), {"payload": payload})

    # ------------------------------------------------------------------ cache
    def cached_key_info(self, name: str) -> KeyInfo | None:
        """The key from the cache, or None when it would take a database read (no I/O)."""
        return self._cache.get(name)

    def key_info(self, name: str) -> KeyInfo:
        """The key named ``name`` (cached), or :class:`NotFoundError`."""
        info = self._cache.get(name)
        if info is not None:
            return info
        return self._load_key(name)

    def _load_key(self, name: str) -> KeyInfo:
        """Read the key from the database and cache it (unless an invalidation raced the read)."""
        check_name(name)
        generation = self._cache_generation
        # Core statements, not the ORM: this read is on the path of the first request after a change.
        with self.engine.connect() as conn:
            key = conn.execute(select(Key.__table__).where(Key.name == name)).first()
            if key is None:
                raise NotFoundError(f"key {name!r} not found", hint="keyguard key list shows the keys")
            versions = conn.execute(select(KeyVersion.__table__).where(KeyVersion.key_id == key.id)).all()
        info = KeyInfo(
            id=key.id,
            name=key.name,
            purpose=key.purpose,
            tier=key.tier,
            owner=key.owner,
            tags=list(key.tags or []),
            rotation_days=key.rotation_days,
            min_decryption_version=key.min_decryption_version,
            created_at=aware(key.created_at) or key.created_at,
            rotated_at=aware(key.rotated_at) or key.rotated_at,
            last_used_at=aware(key.last_used_at),
        )
        for v in versions:
            info.versions[v.version] = VersionInfo(
                version=v.version,
                algorithm=v.algorithm,
                state=v.state,
                seal_generation=v.seal_generation,
                sealed=v.sealed,
                public_key=v.public_key,
                fingerprint=v.fingerprint,
                created_at=aware(v.created_at) or v.created_at,
                state_changed_at=aware(v.state_changed_at) or v.state_changed_at,
                last_used_at=aware(v.last_used_at),
                origin=v.origin,
            )
        with self._cache_lock:
            if generation == self._cache_generation:
                self._cache[name] = info
        return info

    def _loaded(self, info: KeyInfo, v: VersionInfo) -> alg.LoadedKey:
        if v.loaded is None:
            if v.sealed is None:
                raise KeyStateError(info.name, v.version, VersionState.DESTROYED, "use")
            if not self.barrier.has(v.seal_generation):
                self._follow_rotation(v.seal_generation)
            material = self.barrier.unseal(v.seal_generation, v.sealed, sealed_aad(info.id, v.version, v.algorithm))
            v.loaded = alg.LoadedKey(v.algorithm, material)
        return v.loaded

    def _follow_rotation(self, generation: int) -> None:
        """Learn a newer barrier generation through the rotation chain (no root needed)."""
        with Session(self.engine) as session:
            for gen in range(self.barrier.generation + 1, generation + 1):
                row = session.get(RootKey, gen)
                if row is None or row.sealed_by_prev is None or not self.barrier.has(gen - 1):
                    raise IntegrityError(
                        f"barrier generation {generation} is unknown",
                        hint="reopen the vault with the new root",
                    )
                self.barrier.add(gen, chain_open(self.barrier.key(gen - 1), row.sealed_by_prev))

    # ------------------------------------------------------------------ audit helpers
    def _draft(
        self,
        principal: Principal,
        op: str,
        result: str,
        key: str | None,
        version: int | None,
        reason: str | None,
    ) -> EventDraft:
        return EventDraft(
            actor=principal.actor,
            op=op,
            result=result,
            key=key,
            version=version,
            reason=reason,
            source_ip=principal.source_ip,
            user_agent=principal.user_agent,
            request_id=principal.request_id,
            ts=self.clock.now(),
        )

    def record(
        self,
        principal: Principal,
        op: str,
        result: str,
        key: str | None = None,
        version: int | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Append one audit event for ``principal`` (fail closed)."""
        return self.audit.append(self._draft(principal, op, result, key, version, reason))

    @staticmethod
    def audit_ctx() -> dict[str, Any]:
        """The ``ctx`` of the innermost :meth:`audited` operation."""
        ctx = _audit_ctx.get()
        if ctx is None:
            raise RuntimeError("only valid inside an audited() operation")
        return ctx

    @contextmanager
    def state_tx(self) -> Iterator[Connection]:
        """The write transaction of the enclosing :meth:`audited` operation; its ``ok`` event commits with it.

        The chain's lock is taken first, then the block's state statements run,
        then the event is appended in the same transaction from the operation's
        ``ctx`` as it is when the block ends (set ``ctx['reason']`` and
        ``ctx['version']`` inside it). If the block or the audit write fails,
        nothing is committed and :meth:`audited` records the failure instead.
        """
        ctx = self.audit_ctx()
        principal, op, key = ctx["_audit"]
        with write_tx(self.engine) as conn:
            try:
                self.audit.lock_head(conn)
            except Exception as exc:
                raise write_error(exc) from None
            yield conn
            try:
                _record, counter = self.audit.append_in(
                    conn, self._draft(principal, op, "ok", key, ctx["version"], ctx["reason"])
                )
            except Exception as exc:
                raise write_error(exc) from None
        self.audit.committed(counter)
        ctx["_recorded"] = True

    @contextmanager
    def audited(
        self, principal: Principal, op: str, key: str | None, version: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Run an operation; record it allowed or refused. ``ctx['version']`` may be set inside.

        State changes go through :meth:`state_tx`, which commits the change and
        its ``ok`` event together; otherwise the event is appended on the way out.
        """
        ctx: dict[str, Any] = {"version": version, "reason": None, "_audit": (principal, op, key)}
        token = _audit_ctx.set(ctx)
        try:
            yield ctx
        except KeyStateError as exc:
            self.record(principal, op, "denied", key, exc.version, str(exc))
            if exc.state == VersionState.COMPROMISED and not principal.extra.get("probe"):
                for hook in self.tripwire_hooks:
                    hook(principal, exc.key, exc.version, op)
            raise
        except RefusedError as exc:
            self.record(principal, op, "denied", key, ctx["version"], str(exc))
            raise
        except IntegrityError as exc:
            try:
                self.record(principal, op, "error", key, ctx["version"], str(exc))
            except AuditWriteError:
                # A forged head refuses this event too; the integrity failure is what must be seen (exit 5).
                pass
            raise
        except KeyguardError as exc:
            self.record(principal, op, "error", key, ctx["version"], str(exc))
            raise
        finally:
            _audit_ctx.reset(token)
        if not ctx.get("_recorded"):
            self.record(principal, op, "ok", key, ctx["version"], ctx["reason"])

    def require_mfa(self, principal: Principal, op: str) -> None:
        """Refuse a destructive or administrative operation without a second factor where MFA is required.

        Callers: the destructive key operations (``DESTRUCTIVE_OPS``) and the
        administrative ones (``keyguard.vault.principal.ADMIN_OPS``: clients, grants,
        tokens, connectors, policy). Run it inside ``audited`` so the refusal is recorded.
        """
        if self.mfa_required and not principal.mfa:
            raise MfaRequiredError(
                f"{op} needs a second factor", hint="pass a TOTP code (KEYGUARD_OTP / X-Keyguard-OTP)"
            )

    def close(self) -> None:
        """Stop background work and release connections."""
        self.stop_watcher()
        self.audit.close()
