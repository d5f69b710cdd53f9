"""Key management: keys, their versions and version states, and the fingerprints of them all."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from keyguard.crypto import algorithms as alg
from keyguard.errors import ConflictError, NotFoundError, UsageError
from keyguard.store.tables import Key, KeyVersion
from keyguard.vault.core import VaultCore
from keyguard.vault.lifecycle import VersionState, check_transition
from keyguard.vault.model import DESTRUCTIVE_OPS, KeyInfo, check_name, check_tier, sealed_aad
from keyguard.vault.principal import Principal


class KeyringMixin(VaultCore):
    """Create, rotate and change the state of keys; list them and their fingerprints."""

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
        check_tier(tier)
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
        with self.state_tx() as conn:
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
            self.bump_state(conn, name)
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
        gen, sealed = self.barrier.seal(material, sealed_aad(key_id, version, algorithm))
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

    def rotate(self, principal: Principal, name: str, algorithm: str | None = None) -> KeyInfo:
        """Add a new active version (optionally another algorithm of the same purpose)."""
        info = self.key_info(name)
        with self.audited(principal, "key.rotate", name) as ctx:
            principal.require("key.rotate", name)
            new_alg = algorithm or info.versions[info.latest].algorithm
            alg.check_purpose(new_alg, info.purpose)
            material = alg.generate(new_alg)
            ctx["reason"] = f"algorithm {new_alg}"
            ctx["version"] = self._add_version(info, new_alg, material, "generated")
        return self.key_info(name)

    def _add_version(self, info: KeyInfo, algorithm: str, material: bytes, origin: str) -> int:
        """Add the next version in the audited operation's transaction (its event names the version)."""
        now = self.clock.now()
        with self.state_tx() as conn:
            latest = conn.execute(select(func.max(KeyVersion.version)).where(KeyVersion.key_id == info.id)).scalar_one()
            version = int(latest) + 1
            self.audit_ctx()["version"] = version
            conn.execute(
                update(KeyVersion)
                .where(KeyVersion.key_id == info.id, KeyVersion.state == VersionState.ACTIVE.value)
                .values(state=VersionState.ENABLED.value, state_changed_at=now)
            )
            self._insert_version(conn, info.id, version, algorithm, material, origin, now)
            conn.execute(update(Key).where(Key.id == info.id).values(rotated_at=now))
            self.bump_state(conn, info.name)
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
            with self.state_tx() as conn:
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
                self.bump_state(conn, name, version, final)
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
            with self.state_tx() as conn:
                conn.execute(update(Key).where(Key.id == info.id).values(min_decryption_version=minimum))
                self.bump_state(conn, name)
                ctx["reason"] = f"min_decryption_version={minimum}"
        self._invalidate()
        return self.key_info(name)

    def list_keys(self, principal: Principal) -> list[KeyInfo]:
        """Every key (metadata only)."""
        principal.require("key.read")
        with self.engine.connect() as conn:
            names = conn.execute(select(Key.name).order_by(Key.name)).scalars().all()
        return [self.key_info(n) for n in names]

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
