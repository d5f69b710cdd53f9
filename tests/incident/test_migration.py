"""Migration 0002 creates exactly what the incident tables declare."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from keyguard.store.models import Base

TABLES = {
    "incidents",
    "incident_keys",
    "incident_tasks",
    "incident_obligations",
    "incident_timeline",
}


def _table_of(diff: object) -> str | None:
    item = diff[-1] if isinstance(diff, list) else diff
    for part in item if isinstance(item, tuple) else ():
        name = getattr(part, "name", None) if not isinstance(part, str) else None
        table = getattr(part, "table", None)
        if table is not None and getattr(table, "name", None):
            return str(table.name)
        if name in TABLES:
            return str(name)
        if isinstance(part, str) and part in TABLES:
            return part
    return None


def test_migrated_schema_matches_the_tables(engine: Engine) -> None:
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    mine = [d for d in diffs if _table_of(d) in TABLES]
    assert mine == []
