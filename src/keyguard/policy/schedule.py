"""When each key is next due for rotation, and how its last scheduled rotation went.

A key is due ``rotation_days`` after its last rotation (``keys.rotated_at``, moved by every
rotation, scheduled or not); ``keyguard serve`` rotates it then (:mod:`keyguard.response.scheduler`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from keyguard.clock import as_utc, format_time
from keyguard.store.lease_tables import ScheduledRotation
from keyguard.store.tables import Key


def due_at(rotated_at: datetime, rotation_days: int) -> datetime:
    """The moment a key rotated at ``rotated_at`` is due again."""
    return as_utc(rotated_at) + timedelta(days=rotation_days)


def next_rotations(engine: Engine, now: datetime) -> list[dict[str, Any]]:
    """Per key: its period, last rotation, next due time, whether overdue, and its last scheduled run."""
    with engine.connect() as conn:
        keys = conn.execute(select(Key.name, Key.rotated_at, Key.rotation_days).order_by(Key.name)).all()
        runs = conn.execute(select(ScheduledRotation).order_by(ScheduledRotation.id)).all()
    last: dict[str, Any] = {}
    for run in runs:
        last[run.key_name] = run
    out: list[dict[str, Any]] = []
    for name, rotated_at, days in keys:
        due = due_at(rotated_at, days)
        latest: Any = last.get(name)
        out.append({
            "key": name,
            "rotation_days": days,
            "rotated_at": format_time(as_utc(rotated_at)),
            "next_due": format_time(due),
            "overdue": due <= now,
            "last_scheduled": None if latest is None else {
                "status": latest.status, "at": format_time(as_utc(latest.finished_at or latest.claimed_at)),
                "to_version": latest.to_version, "error": latest.error or None},
        })
    return out
