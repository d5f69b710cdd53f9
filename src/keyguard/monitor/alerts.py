"""Alert queries and state changes: open → acknowledged → closed, and the incident link."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, select, update

from keyguard.errors import ConflictError, NotFoundError, UsageError
from keyguard.monitor.tables import Alert, AlertDelivery
from keyguard.store.db import write_tx

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
        "acknowledged_by": data["acknowledged_by"],
        "acknowledged_at": _iso(data["acknowledged_at"]),
        "closed_at": _iso(data["closed_at"]),
        "created_at": _iso(data["created_at"]),
        "details": data["details"],
    }


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
