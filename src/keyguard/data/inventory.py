"""Register what each key version protects, and move it to the active version.

``rewrap`` works in batches, each one transaction guarded by the item's
current version (``UPDATE … WHERE id = ? AND version = ?``), so it is
idempotent, resumable and crash-safe: killed at any point, a rerun finds the
items not yet moved and every item stays decryptable (the old version is only
read, never changed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, cast, func, insert, select

from keyguard.clock import as_utc
from keyguard.crypto import envelope
from keyguard.errors import ConflictError, KeyStateError, NotFoundError, UsageError
from keyguard.store.tables import DataItem
from keyguard.vault.lifecycle import VersionState
from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault

DATA_CLASSES = ("pii", "payment", "credentials", "secrets", "other")


@dataclass(frozen=True)
class RewrapReport:
    """What a rewrap run did."""

    key: str
    to_version: int
    rewrapped: int
    remaining: int
    unrecoverable: int

    def to_dict(self) -> dict[str, Any]:
        """JSON view."""
        return {
            "key": self.key,
            "to_version": self.to_version,
            "rewrapped": self.rewrapped,
            "remaining": self.remaining,
            "unrecoverable": self.unrecoverable,
        }


class DataInventory:
    """Registered data items and their rewrap."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.engine = vault.engine

    def register(
        self,
        principal: Principal,
        name: str,
        data_class: str,
        records: int,
        ciphertext: str,
        context: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record a ciphertext (or wrapped data key) and what it protects; it must authenticate."""
        if not name or len(name) > 256:
            raise UsageError("invalid data item name", hint="1 to 256 characters")
        if data_class not in DATA_CLASSES:
            raise UsageError(f"unknown data class {data_class!r}", hint="one of " + ", ".join(DATA_CLASSES))
        if records < 0:
            raise UsageError("records must be zero or more")
        parsed = envelope.parse(ciphertext)
        with self.vault.audited(principal, "data.register", parsed.key, parsed.version) as ctx:
            principal.require("data.register", parsed.key)
            loaded = self.vault.loaded_version(parsed.key, parsed.version, allow_blocked=True)
            loaded.decrypt(parsed.payload, envelope.associated_data(parsed.key, parsed.version, context))
            now = self.vault.clock.now()
            ctx["reason"] = f"item {name} class {data_class} records {records}"
            with self.vault.state_tx() as conn:  # the row and its audit event commit together
                if conn.execute(select(DataItem.id).where(DataItem.name == name)).first():
                    raise ConflictError(f"data item {name!r} already exists")
                conn.execute(
                    insert(DataItem).values(
                        name=name,
                        data_class=data_class,
                        records=records,
                        key_name=parsed.key,
                        version=parsed.version,
                        ciphertext=ciphertext.strip(),
                        context=context,
                        created_at=now,
                        updated_at=now,
                    )
                )
        return {
            "name": name,
            "key": parsed.key,
            "version": parsed.version,
            "class": data_class,
            "records": records,
        }

    def items(self, principal: Principal, key: str | None = None, version: int | None = None) -> list[dict[str, Any]]:
        """Registered items (optionally of one key / version); never the ciphertext body."""
        principal.require("data.read")
        query = select(
            DataItem.name,
            DataItem.data_class,
            DataItem.records,
            DataItem.key_name,
            DataItem.version,
            DataItem.updated_at,
        ).where(DataItem.is_deleted.is_(False))
        if key is not None:
            query = query.where(DataItem.key_name == key)
        if version is not None:
            query = query.where(DataItem.version == version)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(DataItem.id)).all()
        return [
            {
                "name": r.name,
                "class": r.data_class,
                "records": r.records,
                "key": r.key_name,
                "version": r.version,
                "updated_at": as_utc(r.updated_at),
            }
            for r in rows
        ]

    def summary(self, key: str, versions: list[int] | None = None) -> list[dict[str, Any]]:
        """Items and records per (version, class) for a key: what a leak exposes."""
        query = (
            select(DataItem.version, DataItem.data_class, func.count(), func.sum(DataItem.records))
            .where(DataItem.key_name == key, DataItem.is_deleted.is_(False))
            .group_by(DataItem.version, DataItem.data_class)
        )
        if versions:
            query = query.where(DataItem.version.in_(versions))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [{"version": v, "class": c, "items": int(n), "records": int(r or 0)} for v, c, n, r in rows]

    def pending(self, key: str, active: int) -> int:
        """Items of ``key`` not yet under the active version."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        DataItem.key_name == key,
                        DataItem.version != active,
                        DataItem.is_deleted.is_(False),
                    )
                ).scalar_one()
            )

    def rewrap(
        self,
        principal: Principal,
        key: str,
        batch_size: int = 2000,
        progress: Callable[[int, int], None] | None = None,
        limit: int | None = None,
    ) -> RewrapReport:
        """Move every item of ``key`` to the active version, batch by batch (resumable)."""
        info = self.vault.key_info(key)
        principal.require("data.rewrap", key)
        active = info.active
        if active is None:
            latest = info.versions[info.latest]
            raise KeyStateError(key, latest.version, latest.state, "rewrap")
        target = self.vault.loaded_version(key, active.version, allow_blocked=False)
        total = self.pending(key, active.version)
        done = 0
        lost = 0
        last_id = 0
        is_sqlite = self.engine.dialect.name == "sqlite"
        # Driver-level executemany: this loop is the hot path of a 100k-item rewrap.
        mark = "?" if is_sqlite else "%s"
        update_sql = (
            f"UPDATE data_items SET ciphertext = {mark}, version = {mark}, updated_at = {mark} "  # noqa: S608
            f"WHERE id = {mark} AND version = {mark}"
        )
        raw_context = cast(DataItem.context, Text)
        new_prefix = envelope.associated_data(key, active.version, None)
        while limit is None or done < limit:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(
                        DataItem.id,
                        DataItem.version,
                        DataItem.ciphertext,
                        raw_context.label("context"),
                    )
                    .where(
                        DataItem.key_name == key,
                        DataItem.version != active.version,
                        DataItem.is_deleted.is_(False),
                        DataItem.id > last_id,
                    )
                    .order_by(DataItem.id)
                    .limit(batch_size)
                ).all()
            if not rows:
                break
            last_id = rows[-1].id
            now = self.vault.clock.now()
            stamp: Any = now.strftime("%Y-%m-%d %H:%M:%S.%f") if is_sqlite else now
            params: list[tuple[Any, ...]] = []
            loaded_cache: dict[int, Any] = {}
            for row in rows:
                old = loaded_cache.get(row.version)
                if old is None:
                    state = info.versions[row.version].state if row.version in info.versions else None
                    if state is None or state == VersionState.DESTROYED:
                        lost += 1
                        continue
                    old = loaded_cache[row.version] = (
                        self.vault.loaded_version(key, row.version, allow_blocked=True),
                        envelope.associated_data(key, row.version, None),
                    )
                context = _stored_context(row.context)
                parsed = envelope.parse(row.ciphertext)
                plaintext = old[0].decrypt(parsed.payload, old[1] + context)
                payload = target.encrypt(plaintext, new_prefix + context)
                params.append(
                    (
                        envelope.Ciphertext(key, active.version, payload).text(),
                        active.version,
                        stamp,
                        row.id,
                        row.version,
                    )
                )
            if params:
                # The batch and its audit event commit in one transaction: a crash leaves both or neither.
                with self.vault.audited(principal, "data.rewrap", key, active.version) as ctx:
                    ctx["reason"] = (
                        f"{len(params)} items (ids {params[0][3]}..{params[-1][3]}) to version {active.version}"
                    )
                    with self.vault.state_tx() as conn:
                        conn.exec_driver_sql(update_sql, params)
                done += len(params)
            if progress is not None:
                progress(done, total)
        remaining = self.pending(key, active.version)
        return RewrapReport(key, active.version, done, remaining - lost, lost)


def _stored_context(raw: str | None) -> bytes:
    """The canonical context bytes from the stored JSON text (stored canonically, see store.db)."""
    if raw is None or raw in ("null", "{}"):
        return b""
    return raw.encode()


def require_item(inventory: DataInventory, name: str) -> None:
    """Raise :class:`NotFoundError` when no item has ``name``."""
    with inventory.engine.connect() as conn:
        if conn.execute(select(DataItem.id).where(DataItem.name == name)).first() is None:
            raise NotFoundError(f"data item {name!r} not found")
