"""Persistence of the monitor: bulk import with de-duplication, alerts, named state.

Inserts go through SQLAlchemy Core ``executemany`` in large batches with
``ON CONFLICT DO NOTHING`` on the content-hash unique index, so re-importing a
file adds nothing and concurrent importers cannot create duplicates.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, bindparam, func, inspect, select, text, update
from sqlalchemy.engine import Connection

from keyguard.monitor import metrics
from keyguard.monitor.detect.engine import AlertUpdate, DetectionEngine
from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.importers.base import Parsed, Rejected
from keyguard.monitor.tables import Alert, ImportedEvent, MonitorState
from keyguard.store.db import write_tx

BATCH = 20_000
MAX_REJECTIONS_KEPT = 1000
_EVENTS: Table = ImportedEvent.__table__  # type: ignore[assignment]
_ALERTS: Table = Alert.__table__  # type: ignore[assignment]
_STATE: Table = MonitorState.__table__  # type: ignore[assignment]


@dataclass
class ImportStats:
    """Counts of one import; ``rejections`` keeps the first bad lines (file, line, why)."""

    read: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0
    alerts: int = 0
    rejections: list[Rejected] = field(default_factory=list)

    def to_json(self) -> dict[str, int]:
        """The ``--json`` document of ``audit import`` (SPEC §4)."""
        return {
            "read": self.read,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
        }


_COLUMNS = (
    "content_hash", "ts", "actor", "source_ip", "user_agent", "op", "key", "version", "result",
    "reason", "request_id", "source", "source_file", "source_line",
)  # fmt: skip
_INSERT_SQL = {
    style: (
        f"INSERT INTO imported_events ({', '.join(_COLUMNS)}) "  # noqa: S608 - constant names
        f"VALUES ({', '.join([mark] * len(_COLUMNS))}) ON CONFLICT (content_hash) DO NOTHING"
    )
    for style, mark in (("qmark", "?"), ("format", "%s"))
}


def _row(ev: MonitorEvent, digest: str) -> tuple[Any, ...]:
    return (
        digest, ev.ts, ev.actor, ev.source_ip, ev.user_agent, ev.op, ev.key, ev.version,
        ev.result, ev.reason, ev.request_id, ev.source, ev.source_file, ev.source_line,
    )  # fmt: skip


_PG_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS kg_import_stage ON COMMIT DELETE ROWS AS "  # noqa: S608
    f"SELECT {', '.join(_COLUMNS)} FROM imported_events WITH NO DATA"
)
_PG_MERGE = (
    f"INSERT INTO imported_events ({', '.join(_COLUMNS)}) "  # noqa: S608 - constant names
    f"SELECT {', '.join(_COLUMNS)} FROM kg_import_stage ORDER BY source_line "
    "ON CONFLICT (content_hash) DO NOTHING RETURNING content_hash"
)


def _store_postgresql(conn: Connection, rows: list[tuple[Any, ...]]) -> set[str]:
    """COPY into a temporary stage, then one INSERT … SELECT … RETURNING the new hashes."""
    conn.exec_driver_sql(_PG_STAGE)
    dbapi: Any = conn.connection.dbapi_connection
    with dbapi.cursor() as cur:
        with cur.copy(f"COPY kg_import_stage ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    return {str(h) for (h,) in conn.exec_driver_sql(_PG_MERGE)}


def _store_sqlite(conn: Connection, rows: list[tuple[Any, ...]]) -> set[str] | None:
    """Executemany ``INSERT … ON CONFLICT DO NOTHING``; None means every row was new."""
    conn.exec_driver_sql("PRAGMA cache_size=-65536")
    before = conn.execute(select(func.max(_EVENTS.c.id))).scalar() or 0
    inserted = conn.exec_driver_sql(_INSERT_SQL["qmark"], rows).rowcount
    if inserted == len(rows):
        return None
    fresh: set[str] = set()
    if inserted == 0:
        return fresh
    hashes = [row[0] for row in rows]
    for start in range(0, len(hashes), 900):
        fresh.update(
            conn.execute(
                select(_EVENTS.c.content_hash).where(
                    _EVENTS.c.id > before, _EVENTS.c.content_hash.in_(hashes[start : start + 900])
                )
            ).scalars()
        )
    return fresh


def store_events(engine: Engine, events: Sequence[MonitorEvent]) -> list[MonitorEvent]:
    """Insert ``events``; return those that were new (not already stored), in order.

    SQLite: one executemany of ``INSERT … ON CONFLICT DO NOTHING`` under the write
    lock (new rows are those above the previous maximum id). PostgreSQL: ``COPY``
    into a temporary stage and one ``INSERT … SELECT … RETURNING``.
    """
    if not events:
        return []
    rows: list[tuple[Any, ...]] = []
    seen: dict[str, MonitorEvent] = {}
    for ev in events:
        digest = ev.content_hash()
        if digest not in seen:
            seen[digest] = ev
            rows.append(_row(ev, digest))
    with write_tx(engine) as conn:
        if conn.dialect.name == "postgresql":
            fresh: set[str] | None = _store_postgresql(conn, rows)
        else:
            fresh = _store_sqlite(conn, rows)
    if fresh is None or len(fresh) == len(seen):
        return list(seen.values())
    return [ev for digest, ev in seen.items() if digest in fresh]


def import_stream(
    engine: Engine,
    parsed: Iterable[Parsed],
    *,
    detector: DetectionEngine | None = None,
    on_batch: Callable[[ImportStats], None] | None = None,
    batch_size: int = BATCH,
) -> ImportStats:
    """Store parsed events in batches, run detection on the new ones, count everything.

    Batches are written by one writer thread while this thread parses the next
    batch and runs detection on the previous one (the database drivers release the
    GIL while they work); at most two batches are in flight, so memory stays flat.
    """
    stats = ImportStats()
    batch: list[MonitorEvent] = []
    in_flight: tuple[Future[list[MonitorEvent]], int] | None = None

    def finish(job: tuple[Future[list[MonitorEvent]], int]) -> None:
        fresh = job[0].result()
        stats.imported += len(fresh)
        stats.duplicates += job[1] - len(fresh)
        metrics.count_events(fresh)
        if detector is not None and fresh:
            updates = detector.process_many(fresh)
            if updates:
                stats.alerts += len(save_alerts(engine, updates))
        if on_batch is not None:
            on_batch(stats)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="keyguard-import") as writer:

        def submit() -> None:
            nonlocal batch, in_flight
            job = (writer.submit(store_events, engine, batch), len(batch))
            batch = []
            if in_flight is not None:
                finish(in_flight)
            in_flight = job

        for item in parsed:
            stats.read += 1
            if isinstance(item, Rejected):
                stats.rejected += 1
                if len(stats.rejections) < MAX_REJECTIONS_KEPT:
                    stats.rejections.append(item)
                continue
            batch.append(item)
            if len(batch) >= batch_size:
                submit()
        if batch:
            submit()
        if in_flight is not None:
            finish(in_flight)
    return stats


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


def iter_imported(
    engine: Engine, *, since: str | None = None, key: str | None = None, chunk: int = 10_000
) -> Iterator[dict[str, Any]]:
    """Imported events in id order as §5 records plus ``source`` and ``source_line``."""
    last = 0
    cols = [c for c in _EVENTS.c if c.name not in ("content_hash", "source_file")]
    while True:
        query = select(*cols).where(_EVENTS.c.id > last).order_by(_EVENTS.c.id).limit(chunk)
        if since is not None:
            query = query.where(_EVENTS.c.ts >= since)
        if key is not None:
            query = query.where(_EVENTS.c.key == key)
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        if not rows:
            return
        for row in rows:
            record = dict(row)
            last = int(record["id"])
            yield record
