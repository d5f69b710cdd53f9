"""assessment indexes: per-minute counts and first-seen sources answered from covering indexes

Revision ID: 0004
Revises: 0003

keyguard's own audit log is on the hot path of every operation, so it gets one
index that serves both assessment queries; imported events, written in bulk,
get one index per query.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_MINUTE = sa.text("substr(ts, 1, 16)")


def upgrade() -> None:
    op.create_index(
        "ix_audit_events_key_minute", "audit_events", ["key", _MINUTE, "result", "source_ip", "actor", "user_agent"]
    )
    op.create_index("ix_imported_events_key_minute", "imported_events", ["key", _MINUTE, "result"])
    op.create_index(
        "ix_imported_events_key_sources", "imported_events", ["key", "source_ip", "actor", "user_agent", "ts"]
    )


def downgrade() -> None:
    op.drop_index("ix_imported_events_key_sources", "imported_events")
    op.drop_index("ix_imported_events_key_minute", "imported_events")
    op.drop_index("ix_audit_events_key_minute", "audit_events")
