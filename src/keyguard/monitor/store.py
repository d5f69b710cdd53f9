"""Persistence of the monitor: named state, and the entry points to imported events and alerts.

Imported events are stored as columnar segments (:mod:`keyguard.monitor.segments`)
by the import pipeline (:mod:`keyguard.monitor.pipeline`); alerts are saved by
:mod:`keyguard.monitor.alerts` (re-exported here).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, select, update
from sqlalchemy.engine import Connection

from keyguard.monitor.alerts import save_alerts, save_alerts_in
from keyguard.monitor.batches import ImportStats, python_batches
from keyguard.monitor.detect.engine import DetectionEngine
from keyguard.monitor.importers.base import Parsed
from keyguard.monitor.pipeline import run_import, store_events
from keyguard.monitor.segments import iter_records
from keyguard.store.db import write_tx
from keyguard.store.monitor_tables import MonitorState

_STATE: Table = MonitorState.__table__  # type: ignore[assignment]


def import_stream(
    engine: Engine,
    parsed: Iterable[Parsed],
    *,
    detector: DetectionEngine | None = None,
    on_batch: Callable[[ImportStats], None] | None = None,
) -> ImportStats:
    """Store events parsed in Python as segments, run detection on the new ones, count everything."""
    return run_import(engine, lambda ws, table: python_batches(ws, table, parsed), detector=detector, on_batch=on_batch)


def _now() -> datetime:
    return datetime.now(UTC)


def get_state(engine: Engine, name: str) -> dict[str, Any] | None:
    """A named persisted state (cursor, detector snapshot), or None."""
    with engine.connect() as conn:
        value = conn.execute(select(_STATE.c.value).where(_STATE.c.name == name)).scalar()
    return dict(value) if isinstance(value, dict) else None


def put_state(conn: Connection, name: str, value: dict[str, Any]) -> None:
    """Write a named state inside the caller's transaction."""
    now = _now()
    done = conn.execute(update(_STATE).where(_STATE.c.name == name).values(value=value, updated_at=now)).rowcount
    if not done:
        conn.execute(_STATE.insert().values(name=name, value=value, updated_at=now))


def fingerprint_key(engine: Engine) -> bytes:
    """The HMAC key for credential fingerprints of access logs.

    With an initialised vault it is derived from the vault's sealed secrets and never
    stored; a monitor-only database (no vault) keeps a random key in ``monitor_state``.
    """
    from keyguard.errors import KeyguardError

    try:
        from keyguard.vault.barrier import live_generations

        if live_generations(engine):
            from keyguard.vault.service import Vault

            return Vault.open(engine).derived_key("monitor-credential-fingerprint")
    except KeyguardError:
        pass  # the vault exists but its root is not at hand: fall back to the monitor's own key
    state = get_state(engine, "fingerprint_key")
    if state is None:
        with write_tx(engine) as conn:
            state = conn.execute(select(_STATE.c.value).where(_STATE.c.name == "fingerprint_key")).scalar()
            if not isinstance(state, dict):
                state = {"hex": secrets.token_hex(32)}
                put_state(conn, "fingerprint_key", state)
    return bytes.fromhex(str(state["hex"]))


def iter_imported(engine: Engine, *, since: str | None = None, key: str | None = None) -> Iterator[dict[str, Any]]:
    """Imported events in store order as §5 records plus ``source`` and ``source_line``."""
    return iter_records(engine, since=since, key=key)


__all__ = [
    "ImportStats", "fingerprint_key", "get_state", "import_stream", "iter_imported", "put_state", "save_alerts",
    "save_alerts_in", "store_events",
]  # fmt: skip
