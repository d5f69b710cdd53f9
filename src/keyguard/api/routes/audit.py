"""``/v1/audit``: read events (SPEC §5) and verify the chain."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from sqlalchemy import select

from keyguard.api import schemas
from keyguard.api.deps import PrincipalDep, VaultDep
from keyguard.audit.log import format_ts
from keyguard.audit.reading import verify_log
from keyguard.clock import parse_time
from keyguard.config import MAX_COUNT
from keyguard.store.tables import AuditEvent

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("", name="audit.read")
def read_events(
    vault: VaultDep,
    principal: PrincipalDep,
    since: str | None = Query(default=None, description="RFC 3339 or an offset like -2h"),
    after_id: int = Query(default=0, ge=0, le=MAX_COUNT, description="only events with a greater id (paging)"),
    key: str | None = Query(default=None, max_length=64),
    op: str | None = Query(default=None, max_length=48),
    actor: str | None = Query(default=None, max_length=128),
    result: Literal["ok", "denied", "error"] | None = None,
    limit: int = Query(default=1000, ge=1, le=10_000),
) -> list[schemas.AuditEventOut]:
    """Events in id order (``keyguard audit export``); page with ``after_id``."""
    with vault.audited(principal, "audit.read", key) as ctx:
        principal.require("audit.read")
        query = select(*AuditEvent.__table__.columns).where(AuditEvent.id > after_id)
        if since:
            query = query.where(AuditEvent.ts >= format_ts(parse_time(since, vault.clock)))
        filters: dict[str, Any] = {"key": key, "op": op, "actor": actor, "result": result}
        for column, value in filters.items():
            if value is not None:
                query = query.where(getattr(AuditEvent, column) == value)
        with vault.engine.connect() as conn:
            rows = conn.execute(query.order_by(AuditEvent.id).limit(limit)).all()
        ctx["reason"] = f"{len(rows)} events"
    return [schemas.AuditEventOut.model_validate(dict(row._mapping)) for row in rows]


@router.get("/verify", name="audit.verify")
def verify_chain(vault: VaultDep, principal: PrincipalDep) -> schemas.AuditVerifyOut:
    """Walk the hash chain; a broken one answers 409 naming the first bad event (exit 5)."""
    with vault.audited(principal, "audit.verify", None):
        principal.require("audit.read")
        result = verify_log(vault.engine, vault.checkpoint_key)
    return schemas.AuditVerifyOut(
        valid=True,
        events=result["events"],
        last_id=result["last_id"],
        last_hash=result["last_hash"],
        checkpoint_checked=result["checkpoint"],
    )
