"""assessment indexes: per-minute counts and first-seen sources answered from covering indexes

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TABLES = ("audit_events", "imported_events")


def upgrade() -> None:
    for table in _TABLES:
        op.create_index(f"ix_{table}_key_minute", table, ["key", sa.text("substr(ts, 1, 16)"), "result"])
        op.create_index(f"ix_{table}_key_sources", table, ["key", "source_ip", "actor", "user_agent", "ts"])


def downgrade() -> None:
    for table in _TABLES:
        op.drop_index(f"ix_{table}_key_sources", table)
        op.drop_index(f"ix_{table}_key_minute", table)
