"""The vault: every use of a managed key goes through here and is audited first.

Reads of key state are served from an in-process cache that is invalidated by a
counter bumped in the same transaction as every state change. On PostgreSQL
the change is also announced with ``NOTIFY keyguard_state`` so that every API
node drops its cache within milliseconds; a background watcher on SQLite polls
the counter (a single row) instead of reading key state on every request.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, func, insert, select, text, update
from sqlalchemy.orm import Session

from keyguard.audit.log import AuditLog, EventDraft
from keyguard.clock import Clock, SystemClock, as_utc
from keyguard.crypto import algorithms as alg
from keyguard.crypto import envelope
from keyguard.errors import (
    ConflictError,
    IntegrityError,
    InvalidSignature,
    InvalidTag,
    KeyguardError,
    KeyStateError,
    MfaRequiredError,
    NotFoundError,
    RefusedError,
    UsageError,
)
from keyguard.store.db import write_tx
from keyguard.store.tables import Key, KeyVersion, RootKey, VaultCounter, VaultSecret
from keyguard.vault.barrier import Barrier, open_barrier
from keyguard.vault.keyimport import parse_key
from keyguard.vault.lifecycle import BLOCKED, VersionState, check_transition, usable_for
from keyguard.vault.principal import Principal
from keyguard.vault.roots import RootOfTrust

T = TypeVar("T")
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


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _sealed_aad(key_id: int, version: int, algorithm: str) -> bytes:
    return f"keyguard-key:{key_id}:{version}:{algorithm}".encode()


class Vault:
    """Key management and cryptographic operations, audited."""

    def __init__(self, engine: Engine, barrier: Barrier, clock: Clock | None = None) -> None:
        self.engine = engine
        self.barrier = barrier
        self.clock = clock or SystemClock()
        self._secrets = self._load_secrets()
        self.audit = AuditLog(engine, self._secrets["audit-checkpoint"])
        self._cache: dict[str, KeyInfo] = {}
        self._cache_lock = threading.Lock()
        self._state_seen = -1
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self.mfa_required = os.environ.get("KEYGUARD_MFA", "") == "required"
        self.tripwire_hooks: list[Callable[[Principal, str, int, str], None]] = []
        self.state_hooks: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ opening
    @classmethod
    def initialize(cls, engine: Engine, root: RootOfTrust, clock: Clock | None = None) -> Vault:
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
    def open(cls, engine: Engine, root: RootOfTrust | None = None, clock: Clock | None = None) -> Vault:
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

    def start_watcher(self, interval: float = 0.1) -> None:
        """Keep the state cache fresh across processes and nodes (serve mode)."""
        if self._watcher is not None:
            return
        target = self._listen if self.engine.dialect.name == "postgresql" else self._poll
        self._watcher = threading.Thread(target=target, args=(interval,), name="keyguard-state-watch", daemon=True)
        self._watcher.start()

    def stop_watcher(self) -> None:
        """Stop the background watcher."""
        self._stop.set()

    def _poll(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self._refresh_if_changed()
            except Exception:  # noqa: BLE001,S112 - keep watching; the next poll retries
                continue

    def _listen(self, interval: float) -> None:
        import psycopg

        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("LISTEN keyguard_state")
                    self._invalidate()
                    for _ in conn.notifies(timeout=1.0, stop_after=None):
                        self._invalidate()
                        if self._stop.is_set():
                            return
                    # timeout: loop to re-check the stop flag; the connection is re-used next turn
            except Exception:  # noqa: BLE001 - reconnect after a pause, dropping the cache
                self._invalidate()
                self._stop.wait(interval)

    def _refresh_if_changed(self) -> None:
        with self.engine.connect() as conn:
            value = conn.execute(select(VaultCounter.value).where(VaultCounter.name == "state")).scalar_one()
        if value != self._state_seen:
            self._state_seen = value
            self._invalidate()

    def _invalidate(self) -> None:
        with self._cache_lock:
            self._cache.clear()
        for hook in self.state_hooks:
            hook()

    def bump_state(self, conn: Connection) -> None:
        conn.execute(update(VaultCounter).where(VaultCounter.name == "state").values(value=VaultCounter.value + 1))
        if self.engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_notify('keyguard_state', 'changed')"))

    # ------------------------------------------------------------------ cache
    def cached_key_info(self, name: str) -> KeyInfo | None:
        """The key from the cache, or None when it would take a database read (no I/O)."""
        return self._cache.get(name)

    def key_info(self, name: str) -> KeyInfo:
        """The key named ``name`` (cached), or :class:`NotFoundError`."""
        info = self._cache.get(name)
        if info is not None:
            return info
        check_name(name)
        with Session(self.engine) as session:
            key = session.scalars(select(Key).where(Key.name == name)).one_or_none()
            if key is None:
                raise NotFoundError(f"key {name!r} not found", hint="keyguard key list shows the keys")
            versions = session.scalars(select(KeyVersion).where(KeyVersion.key_id == key.id)).all()
        info = KeyInfo(
            id=key.id,
            name=key.name,
            purpose=key.purpose,
            tier=key.tier,
            owner=key.owner,
            tags=list(key.tags or []),
            rotation_days=key.rotation_days,
            min_decryption_version=key.min_decryption_version,
            created_at=_aware(key.created_at) or key.created_at,
            rotated_at=_aware(key.rotated_at) or key.rotated_at,
            last_used_at=_aware(key.last_used_at),
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
                created_at=_aware(v.created_at) or v.created_at,
                state_changed_at=_aware(v.state_changed_at) or v.state_changed_at,
                last_used_at=_aware(v.last_used_at),
                origin=v.origin,
            )
        with self._cache_lock:
            self._cache[name] = info
        return info

    def _loaded(self, info: KeyInfo, v: VersionInfo) -> alg.LoadedKey:
        if v.loaded is None:
            if v.sealed is None:
                raise KeyStateError(info.name, v.version, VersionState.DESTROYED, "use")
            if not self.barrier.has(v.seal_generation):
                self._follow_rotation(v.seal_generation)
            material = self.barrier.unseal(v.seal_generation, v.sealed, _sealed_aad(info.id, v.version, v.algorithm))
            v.loaded = alg.LoadedKey(v.algorithm, material)
        return v.loaded

    def _follow_rotation(self, generation: int) -> None:
        """Learn a newer barrier generation through the rotation chain (no root needed)."""
        from keyguard.vault.barrier import chain_open

        with Session(self.engine) as session:
            for gen in range(self.barrier.generation + 1, generation + 1):
                row = session.get(RootKey, gen)
                if row is None or row.sealed_by_prev is None or not self.barrier.has(gen - 1):
                    raise IntegrityError(
                        f"barrier generation {generation} is unknown",
                        hint="reopen the vault with the new root",
                    )
                self.barrier.add(gen, chain_open(self.barrier.key(gen - 1), row.sealed_by_prev))

    def list_keys(self, principal: Principal) -> list[KeyInfo]:
        """Every key (metadata only)."""
        principal.require("key.read")
        with self.engine.connect() as conn:
            names = conn.execute(select(Key.name).order_by(Key.name)).scalars().all()
        return [self.key_info(n) for n in names]

    # ------------------------------------------------------------------ audit helpers
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
        return self.audit.append(
            EventDraft(
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
        )

    @contextmanager
    def audited(
        self, principal: Principal, op: str, key: str | None, version: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Run an operation; record it allowed or refused. ``ctx['version']`` may be set inside."""
        ctx: dict[str, Any] = {"version": version, "reason": None}
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
        except KeyguardError as exc:
            self.record(principal, op, "error", key, ctx["version"], str(exc))
            raise
        self.record(principal, op, "ok", key, ctx["version"], ctx["reason"])

    def _version_for(self, info: KeyInfo, op: str, version: int | None) -> VersionInfo:
        """Pick and check the version an operation uses; refuse blocked states."""
        if version is None:
            v = info.active
            if v is None:
                latest = info.versions[info.latest]
                raise KeyStateError(info.name, latest.version, latest.state, op)
        else:
            found = info.versions.get(version)
            if found is None:
                raise NotFoundError(f"key {info.name!r} has no version {version}", hint=f"versions 1..{info.latest}")
            v = found
        if not usable_for(v.state, op):
            raise KeyStateError(info.name, v.version, v.state, op)
        if op in ("decrypt", "verify") and v.version < info.min_decryption_version:
            raise KeyStateError(
                info.name,
                v.version,
                f"below min_decryption_version {info.min_decryption_version}",
                op,
            )
        return v

    def _require_purpose(self, info: KeyInfo, *purposes: str) -> None:
        if info.purpose not in purposes:
            raise UsageError(
                f"key {info.name!r} is a {info.purpose} key",
                hint=f"this operation needs a {' or '.join(purposes)} key",
            )

    # ------------------------------------------------------------------ key management
    def create_key(
        self,
        principal: Principal,
        name: str,
        purpose: str,
        algorithm: str | None = None,
        tier: str = "medium",
        owner: str = "",
        tags: list[str] | None = None,
        rotation_days: int = 90,
    ) -> KeyInfo:
        """Create a key with version 1 active."""
        check_name(name)
        algorithm = algorithm or alg.DEFAULT_ALGORITHM.get(purpose, "")
        alg.check_purpose(algorithm, purpose)
        self._check_tier(tier)
        if rotation_days < 1:
            raise UsageError("rotation period must be at least 1 day")
        with self.audited(principal, "key.create", name, 1):
            principal.require("key.create", name)
            material = alg.generate(algorithm)
            self._insert_key(
                name,
                purpose,
                tier,
                owner,
                tags or [],
                rotation_days,
                algorithm,
                material,
                "generated",
            )
        return self.key_info(name)

    @staticmethod
    def _check_tier(tier: str) -> None:
        if tier not in TIERS:
            raise UsageError(f"unknown tier {tier!r}", hint="one of high, medium, low")

    def _insert_key(
        self,
        name: str,
        purpose: str,
        tier: str,
        owner: str,
        tags: list[str],
        rotation_days: int,
        algorithm: str,
        material: bytes,
        origin: str,
    ) -> None:
        now = self.clock.now()
        with write_tx(self.engine) as conn:
            if conn.execute(select(Key.id).where(Key.name == name)).first() is not None:
                raise ConflictError(f"key {name!r} already exists", hint="use key rotate to add a version")
            key_id = conn.execute(
                insert(Key)
                .values(
                    name=name,
                    purpose=purpose,
                    tier=tier,
                    owner=owner,
                    tags=tags,
                    rotation_days=rotation_days,
                    min_decryption_version=1,
                    created_at=now,
                    rotated_at=now,
                )
                .returning(Key.id)
            ).scalar_one()
            self._insert_version(conn, key_id, 1, algorithm, material, origin, now)
            self.bump_state(conn)
        self._invalidate()

    def _insert_version(
        self,
        conn: Connection,
        key_id: int,
        version: int,
        algorithm: str,
        material: bytes,
        origin: str,
        now: datetime,
    ) -> None:
        loaded = alg.LoadedKey(algorithm, material)
        spki = loaded.public_spki()
        fingerprint = (
            alg.public_fingerprint(spki) if spki is not None else alg.secret_fingerprint(self.fingerprint_key, material)
        )
        gen, sealed = self.barrier.seal(material, _sealed_aad(key_id, version, algorithm))
        conn.execute(
            insert(KeyVersion).values(
                key_id=key_id,
                version=version,
                algorithm=algorithm,
                state=VersionState.ACTIVE.value,
                sealed=sealed,
                seal_generation=gen,
                public_key=spki,
                fingerprint=fingerprint,
                origin=origin,
                created_at=now,
                state_changed_at=now,
            )
        )

    def import_key(
        self,
        principal: Principal,
        name: str,
        data: bytes,
        purpose: str,
        tier: str = "medium",
        algorithm: str | None = None,
        owner: str = "",
        tags: list[str] | None = None,
    ) -> KeyInfo:
        """Import existing material as a new key (or a new active version of an existing one)."""
        check_name(name)
        self._check_tier(tier)
        if algorithm is not None:
            alg.check_purpose(algorithm, purpose)
        parsed = parse_key(data, purpose, algorithm)
        if algorithm is not None and parsed.kind == "private" and parsed.algorithm != algorithm:
            raise UsageError(f"the key is {parsed.algorithm}, not {algorithm}")
        alg.check_purpose(parsed.algorithm, purpose)
        exists = self._exists(name)
        with self.audited(principal, "key.import", name) as ctx:
            principal.require("key.import", name)
            if exists:
                info = self.key_info(name)
                if info.purpose != purpose:
                    raise UsageError(f"key {name!r} is a {info.purpose} key", hint="import under another name")
                ctx["version"] = self._add_version(info, parsed.algorithm, parsed.material, "imported")
            else:
                ctx["version"] = 1
                self._insert_key(
                    name,
                    purpose,
                    tier,
                    owner,
                    tags or [],
                    90,
                    parsed.algorithm,
                    parsed.material,
                    "imported",
                )
        return self.key_info(name)

    def _exists(self, name: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(Key.id).where(Key.name == name)).first() is not None

    def rotate(self, principal: Principal, name: str, algorithm: str | None = None) -> KeyInfo:
        """Add a new active version (optionally another algorithm of the same purpose)."""
        info = self.key_info(name)
        with self.audited(principal, "key.rotate", name) as ctx:
            principal.require("key.rotate", name)
            new_alg = algorithm or info.versions[info.latest].algorithm
            alg.check_purpose(new_alg, info.purpose)
            material = alg.generate(new_alg)
            ctx["version"] = self._add_version(info, new_alg, material, "generated")
            ctx["reason"] = f"algorithm {new_alg}"
        return self.key_info(name)

    def _add_version(self, info: KeyInfo, algorithm: str, material: bytes, origin: str) -> int:
        now = self.clock.now()
        with write_tx(self.engine) as conn:
            latest = conn.execute(select(func.max(KeyVersion.version)).where(KeyVersion.key_id == info.id)).scalar_one()
            version = int(latest) + 1
            conn.execute(
                update(KeyVersion)
                .where(KeyVersion.key_id == info.id, KeyVersion.state == VersionState.ACTIVE.value)
                .values(state=VersionState.ENABLED.value, state_changed_at=now)
            )
            self._insert_version(conn, info.id, version, algorithm, material, origin, now)
            conn.execute(update(Key).where(Key.id == info.id).values(rotated_at=now))
            self.bump_state(conn)
        self._invalidate()
        return version

    def set_state(
        self, principal: Principal, name: str, version: int, target: str, reason: str | None = None
    ) -> KeyInfo:
        """Move a version to ``target`` (disable, enable, compromise, destroy)."""
        op = {
            VersionState.DISABLED: "key.disable",
            VersionState.ENABLED: "key.enable",
            VersionState.COMPROMISED: "key.compromise",
            VersionState.DESTROYED: "key.destroy",
        }.get(VersionState(target))
        if op is None:
            raise UsageError(f"cannot set state {target} directly", hint="rotate makes a new active version")
        info = self.key_info(name)
        with self.audited(principal, op, name, version) as ctx:
            principal.require(op, name)
            if op in DESTRUCTIVE_OPS:
                self.require_mfa(principal, op)
            if version not in info.versions:
                raise NotFoundError(f"key {name!r} has no version {version}", hint=f"versions 1..{info.latest}")
            now = self.clock.now()
            with write_tx(self.engine) as conn:
                row = conn.execute(
                    select(KeyVersion.state).where(KeyVersion.key_id == info.id, KeyVersion.version == version)
                ).scalar_one()
                final = target
                if target == VersionState.ENABLED:
                    has_active = conn.execute(
                        select(KeyVersion.id).where(
                            KeyVersion.key_id == info.id,
                            KeyVersion.state == VersionState.ACTIVE.value,
                        )
                    ).first()
                    latest = conn.execute(
                        select(func.max(KeyVersion.version)).where(KeyVersion.key_id == info.id)
                    ).scalar_one()
                    if has_active is None and version == latest:
                        final = VersionState.ACTIVE.value
                if row == final:
                    ctx["reason"] = f"already {final}"
                    return info
                check_transition(name, version, row, final)
                values: dict[str, Any] = {"state": final, "state_changed_at": now}
                if final == VersionState.DESTROYED:
                    values["sealed"] = None
                conn.execute(
                    update(KeyVersion)
                    .where(KeyVersion.key_id == info.id, KeyVersion.version == version)
                    .values(**values)
                )
                self.bump_state(conn)
            ctx["reason"] = reason or f"{row} -> {final}"
        self._invalidate()
        return self.key_info(name)

    def set_min_decryption_version(self, principal: Principal, name: str, minimum: int) -> KeyInfo:
        """Refuse decryption with versions below ``minimum``."""
        info = self.key_info(name)
        with self.audited(principal, "key.config", name, minimum) as ctx:
            principal.require("key.config", name)
            if not 1 <= minimum <= info.latest:
                raise UsageError(f"min_decryption_version must be within 1..{info.latest}")
            with write_tx(self.engine) as conn:
                conn.execute(update(Key).where(Key.id == info.id).values(min_decryption_version=minimum))
                self.bump_state(conn)
            ctx["reason"] = f"min_decryption_version={minimum}"
        self._invalidate()
        return self.key_info(name)

    def require_mfa(self, principal: Principal, op: str) -> None:
        """Refuse a destructive operation without a second factor where MFA is required."""
        if self.mfa_required and not principal.mfa:
            raise MfaRequiredError(f"{op} needs a second factor", hint="pass a TOTP code (--otp / X-Keyguard-OTP)")

    # ------------------------------------------------------------------ crypto operations
    def encrypt(
        self,
        principal: Principal,
        name: str,
        plaintext: bytes,
        context: dict[str, Any] | None = None,
    ) -> tuple[str, int]:
        """Encrypt under the active version; returns ``(ciphertext text, version)``."""
        with self.audited(principal, "encrypt", name) as ctx:
            principal.require("encrypt", name)
            info = self.key_info(name)
            self._require_purpose(info, "encrypt")
            v = self._version_for(info, "encrypt", None)
            ctx["version"] = v.version
            payload = self._loaded(info, v).encrypt(plaintext, envelope.associated_data(name, v.version, context))
        return envelope.Ciphertext(name, v.version, payload).text(), v.version

    def decrypt(
        self,
        principal: Principal,
        ciphertext: str,
        context: dict[str, Any] | None = None,
        *,
        op: str = "decrypt",
    ) -> tuple[bytes, str, int]:
        """Decrypt; returns ``(plaintext, key name, version)``."""
        parsed = envelope.parse(ciphertext)
        with self.audited(principal, op, parsed.key, parsed.version) as ctx:
            principal.require(op, parsed.key)
            plaintext = self._open(parsed, context, op)
            ctx["version"] = parsed.version
        return plaintext, parsed.key, parsed.version

    def _open(
        self,
        parsed: envelope.Ciphertext,
        context: dict[str, Any] | None,
        op: str,
        *,
        allow_blocked: bool = False,
    ) -> bytes:
        info = self.key_info(parsed.key)
        self._require_purpose(info, "encrypt")
        if allow_blocked:
            v = info.versions.get(parsed.version)
            if v is None:
                raise NotFoundError(f"key {info.name!r} has no version {parsed.version}")
            if v.state == VersionState.DESTROYED:
                raise KeyStateError(info.name, v.version, v.state, op)
        else:
            v = self._version_for(info, "decrypt", parsed.version)
        return self._loaded(info, v).decrypt(
            parsed.payload, envelope.associated_data(parsed.key, parsed.version, context)
        )

    def rewrap(self, principal: Principal, ciphertext: str, context: dict[str, Any] | None = None) -> tuple[str, int]:
        """Re-encrypt a ciphertext under the active version without revealing the plaintext.

        Admins and operators may rewrap ciphertexts of disabled or compromised
        versions (that is how data is moved off a leaked key); services may not.
        """
        parsed = envelope.parse(ciphertext)
        with self.audited(principal, "rewrap", parsed.key, parsed.version) as ctx:
            principal.require("rewrap", parsed.key)
            privileged = principal.role in ("admin", "operator")
            plaintext = self._open(parsed, context, "rewrap", allow_blocked=privileged)
            info = self.key_info(parsed.key)
            v = self._version_for(info, "encrypt", None)
            payload = self._loaded(info, v).encrypt(plaintext, envelope.associated_data(info.name, v.version, context))
            ctx["reason"] = f"to version {v.version}"
        return envelope.Ciphertext(info.name, v.version, payload).text(), v.version

    def generate_data_key(
        self, principal: Principal, name: str, context: dict[str, Any] | None = None
    ) -> tuple[bytes, str, int]:
        """A fresh 256-bit data key: plaintext, and wrapped under the active version."""
        with self.audited(principal, "data-key", name) as ctx:
            principal.require("data-key", name)
            info = self.key_info(name)
            self._require_purpose(info, "encrypt")
            v = self._version_for(info, "data-key", None)
            ctx["version"] = v.version
            dek = alg.new_data_key()
            payload = self._loaded(info, v).encrypt(dek, envelope.associated_data(name, v.version, context))
        return dek, envelope.Ciphertext(name, v.version, payload).text(), v.version

    def sign(self, principal: Principal, name: str, message: bytes) -> tuple[bytes, int]:
        """Sign (or MAC) with the active version; returns ``(raw signature, version)``."""
        with self.audited(principal, "sign", name) as ctx:
            principal.require("sign", name)
            info = self.key_info(name)
            self._require_purpose(info, "sign", "mac")
            v = self._version_for(info, "sign", None)
            ctx["version"] = v.version
            signature = self._loaded(info, v).sign(message)
        return signature, v.version

    def verify(
        self,
        principal: Principal,
        name: str,
        message: bytes,
        signature: bytes,
        version: int | None = None,
    ) -> int:
        """Verify; returns the version that verified. Raises :class:`InvalidSignature`."""
        raw = signature
        with self.audited(principal, "verify", name, version) as ctx:
            principal.require("verify", name)
            info = self.key_info(name)
            self._require_purpose(info, "sign", "mac")
            candidates = [version] if version else sorted(info.versions, reverse=True)
            for n in candidates:
                v = info.versions.get(n)
                if v is None:
                    raise NotFoundError(f"key {name!r} has no version {n}")
                if version is None and not usable_for(v.state, "verify"):
                    continue
                v = self._version_for(info, "verify", n)
                try:
                    self._loaded(info, v).verify(message, raw)
                except InvalidSignature:
                    continue
                ctx["version"] = v.version
                return v.version
            raise InvalidSignature()
        raise AssertionError("unreachable")  # pragma: no cover

    def public_key(self, principal: Principal, name: str, version: int | None = None) -> tuple[bytes, int, str]:
        """SubjectPublicKeyInfo DER, version and algorithm of an asymmetric key."""
        with self.audited(principal, "export-public", name, version) as ctx:
            principal.require("export-public", name)
            info = self.key_info(name)
            n = version or (info.active.version if info.active else info.latest)
            v = info.versions.get(n)
            if v is None:
                raise NotFoundError(f"key {name!r} has no version {n}")
            if v.public_key is None:
                raise UsageError(f"key {name!r} is a secret key", hint="only asymmetric keys have a public part")
            ctx["version"] = n
        return v.public_key, n, v.algorithm

    # ------------------------------------------------------------------ internal use
    def loaded_version(self, name: str, version: int, *, allow_blocked: bool) -> alg.LoadedKey:
        """Material for internal bulk work (data rewrap, dead-key proofs). Callers audit."""
        info = self.key_info(name)
        v = info.versions.get(version)
        if v is None:
            raise NotFoundError(f"key {name!r} has no version {version}")
        if v.state in BLOCKED and not allow_blocked:
            raise KeyStateError(name, version, v.state, "use")
        return self._loaded(info, v)

    def fingerprints(self) -> dict[str, tuple[str, int]]:
        """Fingerprint → (key, version) of every version (for the scanner)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Key.name, KeyVersion.version, KeyVersion.fingerprint).join(Key, Key.id == KeyVersion.key_id)
            ).all()
        return {row.fingerprint: (row.name, row.version) for row in rows}

    def secret_fingerprint(self, raw: bytes) -> str:
        """Fingerprint a candidate secret the way the vault fingerprints its own keys."""
        return alg.secret_fingerprint(self.fingerprint_key, raw)

    def close(self) -> None:
        """Stop background work and release connections."""
        self.stop_watcher()


def hash_token(token: str) -> str:
    """SHA-256 of a bearer token (tokens are 256-bit random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def json_dumps(value: Any) -> str:
    """Compact JSON."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


__all__ = ["IntegrityError", "InvalidTag", "KeyInfo", "Vault", "VersionInfo"]
