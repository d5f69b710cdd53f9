"""Alerts: saved (grouped) as detection raises them, queried, open → acknowledged → closed, linked to incidents.

Two levels of grouping: detection folds the firings of one rule, key and
discriminator within the rule's window into one alert with a count; the lists fold
repeated alerts of one rule, key and source (the event's actor, else its source IP)
into one group with the number of alerts, the events, and the first and last time
(:func:`list_alert_groups`), and a group is acknowledged at once (:func:`acknowledge_group`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Table, bindparam, func, inspect, select, text, update
from sqlalchemy.engine import Connection

from keyguard.errors import ConflictError, NotFoundError, UsageError
from keyguard.monitor import metrics
from keyguard.store.db import write_tx
from keyguard.store.monitor_tables import Alert, AlertDelivery

if TYPE_CHECKING:
    from keyguard.monitor.detect.engine import AlertUpdate

STATUSES = ("open", "acknowledged", "closed")
_ALERTS: Table = Alert.__table__  # type: ignore[assignment]
_DELIVERIES: Table = AlertDelivery.__table__  # type: ignore[assignment]


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def alert_dict(row: Any) -> dict[str, Any]:
    """The JSON shape of an alert (CLI, API and sinks)."""
    data = dict(row._mapping)
    return {
        "id": data["id"],
        "rule": data["rule"],
        "severity": data["severity"],
        "key": data["key"],
        "title": data["title"],
        "count": data["count"],
        "first_seen": data["first_seen"],
        "last_seen": data["last_seen"],
        "status": data["status"],
        "incident_id": data["incident_id"],
        "source": data.get("source"),
        "acknowledged_by": data["acknowledged_by"],
        "acknowledged_at": _iso(data["acknowledged_at"]),
        "closed_at": _iso(data["closed_at"]),
        "created_at": _iso(data["created_at"]),
        "details": data["details"],
    }


def source_of(event: dict[str, Any]) -> str | None:
    """Who or where an alert's event came from: the actor, else the source IP."""
    value = event.get("actor") or event.get("source_ip")
    return str(value)[:256] if value else None


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
    now = datetime.now(UTC)
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
                source=source_of(up.event),
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


def list_alerts(
    engine: Engine,
    *,
    status: str | None = "open",
    rule: str | None = None,
    key: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Alerts, newest first; ``status=None`` for every status."""
    if status is not None and status not in STATUSES:
        raise UsageError(f"unknown alert status {status!r}", hint="open, acknowledged, closed or all")
    query = select(_ALERTS).order_by(_ALERTS.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(_ALERTS.c.status == status)
    if rule is not None:
        query = query.where(_ALERTS.c.rule == rule)
    if key is not None:
        query = query.where(_ALERTS.c.key == key)
    with engine.connect() as conn:
        return [alert_dict(row) for row in conn.execute(query)]


def list_alert_groups(
    engine: Engine,
    *,
    status: str | None = "open",
    rule: str | None = None,
    key: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Alerts grouped by rule, key and source: how many alerts and events, first and last time, newest first."""
    if status is not None and status not in STATUSES:
        raise UsageError(f"unknown alert status {status!r}", hint="open, acknowledged, closed or all")
    a = _ALERTS.c
    query = (
        select(
            a.rule,
            a.key,
            a.source,
            func.max(a.severity).label("severity"),
            func.count().label("alerts"),
            func.sum(a.count).label("events"),
            func.min(a.first_seen).label("first_seen"),
            func.max(a.last_seen).label("last_seen"),
            func.max(a.id).label("latest_id"),
            func.min(a.status).label("status"),
        )
        .group_by(a.rule, a.key, a.source)
        .order_by(func.max(a.id).desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(a.status == status)
    if rule is not None:
        query = query.where(a.rule == rule)
    if key is not None:
        query = query.where(a.key == key)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        titles = dict(conn.execute(select(a.id, a.title).where(a.id.in_([r.latest_id for r in rows]))).all())
    return [
        {
            "rule": r.rule,
            "key": r.key,
            "source": r.source,
            "severity": r.severity,
            "alerts": int(r.alerts),
            "count": int(r.events or 0),
            "first_seen": r.first_seen,
            "last_seen": r.last_seen,
            "latest_id": int(r.latest_id),
            "status": r.status,
            "title": titles.get(r.latest_id, ""),
        }
        for r in rows
    ]


def get_alert(engine: Engine, alert_id: int) -> dict[str, Any]:
    """One alert with its delivery records; NotFoundError if there is none."""
    with engine.connect() as conn:
        row = conn.execute(select(_ALERTS).where(_ALERTS.c.id == alert_id)).first()
        if row is None:
            raise NotFoundError(f"no alert {alert_id}", hint="see keyguard alert list")
        deliveries = conn.execute(
            select(
                _DELIVERIES.c.sink,
                _DELIVERIES.c.outcome,
                _DELIVERIES.c.attempts,
                _DELIVERIES.c.error,
                _DELIVERIES.c.at,
            )
            .where(_DELIVERIES.c.alert_id == alert_id)
            .order_by(_DELIVERIES.c.id)
        ).all()
    result = alert_dict(row)
    result["deliveries"] = [
        {
            "sink": d.sink,
            "outcome": d.outcome,
            "attempts": d.attempts,
            "error": d.error,
            "at": _iso(d.at),
        }
        for d in deliveries
    ]
    return result


def _transition(engine: Engine, alert_id: int, allowed: tuple[str, ...], values: dict[str, Any]) -> dict[str, Any]:
    with write_tx(engine) as conn:
        status = conn.execute(select(_ALERTS.c.status).where(_ALERTS.c.id == alert_id)).scalar()
        if status is None:
            raise NotFoundError(f"no alert {alert_id}", hint="see keyguard alert list")
        if status not in allowed:
            raise ConflictError(f"alert {alert_id} is {status}", hint="nothing was changed")
        conn.execute(update(_ALERTS).where(_ALERTS.c.id == alert_id).values(**values))
    return get_alert(engine, alert_id)


def acknowledge(engine: Engine, alert_id: int, *, by: str = "") -> dict[str, Any]:
    """open → acknowledged (acknowledging twice is refused)."""
    now = datetime.now(UTC)
    return _transition(
        engine,
        alert_id,
        ("open",),
        {
            "status": "acknowledged",
            "acknowledged_by": by[:128] or None,
            "acknowledged_at": now,
            "updated_at": now,
        },
    )


def acknowledge_group(engine: Engine, alert_id: int, *, by: str = "") -> list[int]:
    """Acknowledge every open alert of the group (rule, key, source) of ``alert_id``; their ids."""
    a = _ALERTS.c
    now = datetime.now(UTC)
    with write_tx(engine) as conn:
        row = conn.execute(select(a.rule, a.key, a.source).where(a.id == alert_id)).first()
        if row is None:
            raise NotFoundError(f"no alert {alert_id}", hint="see keyguard alert list")
        same = [
            a.rule == row.rule,
            a.key.is_(None) if row.key is None else a.key == row.key,
            a.source.is_(None) if row.source is None else a.source == row.source,
            a.status == "open",
        ]
        ids = [int(i) for i in conn.execute(select(a.id).where(*same).order_by(a.id)).scalars()]
        if ids:
            conn.execute(
                update(_ALERTS)
                .where(a.id.in_(ids))
                .values(status="acknowledged", acknowledged_by=by[:128] or None, acknowledged_at=now, updated_at=now)
            )
    return ids


def close(engine: Engine, alert_id: int) -> dict[str, Any]:
    """open or acknowledged → closed."""
    now = datetime.now(UTC)
    return _transition(
        engine,
        alert_id,
        ("open", "acknowledged"),
        {"status": "closed", "closed_at": now, "updated_at": now},
    )


def link_incident(engine: Engine, alert_id: int, incident_id: int | None) -> dict[str, Any]:
    """Attach (or detach with None) the incident that covers this alert."""
    return _transition(engine, alert_id, STATUSES, {"incident_id": incident_id, "updated_at": datetime.now(UTC)})


def link_open_alerts(engine: Engine, key: str, incident_id: int) -> int:
    """Attach every not-closed alert of ``key`` without an incident to ``incident_id``."""
    with write_tx(engine) as conn:
        return int(
            conn.execute(
                update(_ALERTS)
                .where(
                    _ALERTS.c.key == key,
                    _ALERTS.c.status != "closed",
                    _ALERTS.c.incident_id.is_(None),
                )
                .values(incident_id=incident_id, updated_at=datetime.now(UTC))
            ).rowcount
        )
