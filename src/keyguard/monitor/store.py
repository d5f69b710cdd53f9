"""Persistence of the monitor: alerts, named state, and the entry points to imported events.

Imported events are stored as columnar segments (:mod:`keyguard.monitor.segments`)
by the import pipeline (:mod:`keyguard.monitor.pipeline`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, bindparam, inspect, select, text, update
from sqlalchemy.engine import Connection

from keyguard.monitor import metrics
from keyguard.monitor.detect.engine import AlertUpdate, DetectionEngine
from keyguard.monitor.importers.base import Parsed
from keyguard.monitor.pipeline import ImportStats, python_batches, run_import, store_events
from keyguard.monitor.segments import iter_records
from keyguard.monitor.tables import Alert, MonitorState
from keyguard.store.db import write_tx

_ALERTS: Table = Alert.__table__  # type: ignore[assignment]
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


def save_alerts(engine: Engine, updates: Iterable[AlertUpdate]) -> list[int]:
    """Persist grouped alert updates; return the ids of alerts created (to deliver).

    An update joins the open or acknowledged alert of its group; when there is none
    (new group, or the last one was closed) a new alert is created.
    """
    with write_tx(engine) as conn:
        return save_alerts_in(conn, updates)


def save_alerts_in(conn: Connection, updates: Iterable[AlertUpdate]) -> list[int]:
    """:func:`save_alerts` inside the caller's transaction (set-wise: a few statements)."""
    pending = list(updates)
    if not pending:
        return []
    now = _now()
    groups = sorted({up.group_key for up in pending})
    latest: dict[str, list[Any]] = {}  # group_key -> [alert id, count, last_seen]
    for start in range(0, len(groups), 500):
        rows = conn.execute(
            select(_ALERTS.c.id, _ALERTS.c.group_key, _ALERTS.c.count, _ALERTS.c.last_seen)
            .where(_ALERTS.c.group_key.in_(groups[start : start + 500]), _ALERTS.c.status != "closed")
            .order_by(_ALERTS.c.id)
        )
        for alert_id, group_key, count, last_seen in rows:
            latest[group_key] = [int(alert_id), int(count), str(last_seen)]
    changed: dict[int, dict[str, Any]] = {}
    created: list[int] = []
    for up in pending:
        current = latest.get(up.group_key)
        if current is not None and current[2] >= up.ts:
            continue  # a replay after a restart: this firing is already recorded
        if current is not None and not up.is_new:
            current[1] += up.count
            current[2] = up.ts
            changed[current[0]] = {"b_id": current[0], "count": current[1], "last_seen": up.ts}
            continue
        alert_id = conn.execute(
            _ALERTS.insert().values(
                rule=up.rule,
                severity=up.severity,
                key=up.key,
                group_key=up.group_key,
                title=up.title,
                details={**up.details, "event": up.event},
                count=up.count,
                first_seen=up.first_ts or up.ts,
                last_seen=up.ts,
                status="open",
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key
        assert alert_id is not None
        latest[up.group_key] = [int(alert_id[0]), up.count, up.ts]
        created.append(int(alert_id[0]))
        metrics.ALERTS.labels(rule=up.rule).inc()
    if changed:
        conn.execute(
            update(_ALERTS)
            .where(_ALERTS.c.id == bindparam("b_id"))
            .values(count=bindparam("count"), last_seen=bindparam("last_seen"), updated_at=now),
            list(changed.values()),
        )
    if created:
        _link_to_open_incidents(conn, created)
    return created


def _link_to_open_incidents(conn: Connection, alert_ids: list[int]) -> None:
    """New alerts of a key that an open incident covers join that incident (the newest one)."""
    if "incident_keys" not in inspect(conn).get_table_names():
        return
    conn.execute(
        text(
            "UPDATE alerts SET incident_id = ("
            " SELECT MAX(ik.incident_id) FROM incident_keys ik JOIN incidents i ON i.id = ik.incident_id"
            " WHERE ik.key_name = alerts.key AND i.status <> 'closed')"
            " WHERE incident_id IS NULL AND id IN :ids"
        ).bindparams(bindparam("ids", expanding=True)),
        {"ids": alert_ids},
    )


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
