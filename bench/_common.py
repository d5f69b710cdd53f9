"""Helpers shared by the bench scripts (not part of the package)."""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert

from keyguard.audit.log import format_ts
from keyguard.store.db import create_db_engine, migrate


def fresh_sqlite(prefix: str) -> tuple[Engine, Path]:
    """A migrated SQLite database in a new temporary directory."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    engine = create_db_engine(f"sqlite:///{home / 'keyguard.db'}")
    migrate(engine)
    return engine, home


def synthetic_history(
    engine: Engine,
    key: str,
    n: int,
    exposed_at: datetime,
    attacker_share: float = 0.01,
    seed: int = 1,
) -> None:
    """``n`` imported events over 30 days for ``key``: office-hours traffic, then an attacker."""
    from keyguard.monitor.event import MonitorEvent
    from keyguard.monitor.store import import_stream

    rng = random.Random(seed)
    start = exposed_at - timedelta(days=30)
    span = (exposed_at - start).total_seconds()
    normal_ips = [f"10.0.{i}.{j}" for i in range(2) for j in range(1, 6)]
    n_attack = int(n * attacker_share)

    def events() -> Iterator[MonitorEvent]:
        for i in range(n):
            if i < n - n_attack:
                at = start + timedelta(seconds=rng.random() * span)
                at = at.replace(hour=8 + (at.hour % 10))
                ip, actor, ua, result = rng.choice(normal_ips), f"svc-{i % 4}", "billing/2.1", "ok"
            else:
                at = exposed_at + timedelta(hours=2, seconds=rng.random() * 600)
                ip, actor, ua, result = "203.0.113.66", "svc-0", "python-requests/2.31", "ok"
            yield MonitorEvent(
                ts=format_ts(at),
                op="decrypt" if i % 3 else "encrypt",
                result=result,
                key=key,
                version=1,
                actor=actor,
                source_ip=ip,
                user_agent=ua,
                request_id=f"{seed}-{i}",
                source="jsonl",
                source_line=i + 1,
                source_file="bench",
            )

    import_stream(engine, events())


def now() -> datetime:
    """UTC now."""
    return datetime.now(UTC)


os.environ.setdefault("KEYGUARD_KDF_MEMORY_KIB", "65536")


def synthetic_own_history(engine: Engine, key: str, n: int, exposed_at: datetime, seed: int = 2) -> None:
    """``n`` rows in keyguard's own ``audit_events`` over 31 days (filler hashes: assessment reads
    no hash; a real log would also pass ``audit verify``)."""
    from keyguard.store.tables import AuditEvent

    rng = random.Random(seed)
    start = exposed_at - timedelta(days=30)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        at = start + timedelta(seconds=rng.random() * 31 * 86400)
        rows.append(
            {
                "id": i + 1,
                "ts": format_ts(at),
                "actor": f"svc-{i % 4}",
                "source_ip": f"10.0.1.{i % 7}",
                "user_agent": "billing/2.1",
                "op": "decrypt",
                "key": key,
                "version": 1,
                "result": "ok",
                "reason": None,
                "request_id": None,
                "prev_hash": "0" * 64,
                "hash": "0" * 64,
            }
        )
        if len(rows) == 50_000:
            with engine.begin() as conn:
                conn.execute(insert(AuditEvent), rows)
            rows = []
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(AuditEvent), rows)
