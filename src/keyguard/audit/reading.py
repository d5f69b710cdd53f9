"""Reading the audit log back: events streamed in id order, and the whole chain verified."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, select

from keyguard.audit.chain import head_problem, verify_events
from keyguard.errors import ChainIntegrityError
from keyguard.store.tables import AuditEvent, AuditHead


def iter_events(engine: Engine, since_id: int = 0, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Stream events in id order without holding the log in memory."""
    cols = list(AuditEvent.__table__.columns)
    last = since_id
    while True:
        with engine.connect() as conn:
            rows = conn.execute(select(*cols).where(AuditEvent.id > last).order_by(AuditEvent.id).limit(batch)).all()
        if not rows:
            return
        for row in rows:
            yield dict(row._mapping)
        last = rows[-1].id


def verify_log(engine: Engine, checkpoint_key: bytes | None = None) -> dict[str, Any]:
    """Walk the whole chain; raise :class:`ChainIntegrityError` at the first bad event.

    With ``checkpoint_key`` the head must carry the vault's checkpoint: a blank
    or missing one on a log that has events is a failure, never a skipped check.
    """
    with engine.connect() as conn:
        last_id, last_hash, mark, counter = conn.execute(
            select(AuditHead.last_id, AuditHead.last_hash, AuditHead.checkpoint, AuditHead.counter).where(
                AuditHead.id == 1
            )
        ).one()
    result = verify_events(iter_events(engine), int(last_id), str(last_hash))
    problem = head_problem(checkpoint_key, int(last_id), str(last_hash), int(counter or 0), mark)
    if problem is not None:
        raise ChainIntegrityError(int(last_id), problem)
    return {
        "events": result.events,
        "last_id": result.last_id,
        "last_hash": result.last_hash,
        "counter": int(counter or 0),
        "checkpoint": checkpoint_key is not None and bool(mark),
    }
