"""incidents: incidents, their keys, tasks, obligations and timeline

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def _fk() -> sa.Column[int]:
    return sa.Column(
        "incident_id",
        sa.Integer(),
        sa.ForeignKey("incidents.id", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("title", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("playbook", sa.String(length=64), nullable=False),
        sa.Column("exposed_at", _TS, nullable=False),
        sa.Column("detected_at", _TS, nullable=False),
        sa.Column("jurisdictions", sa.JSON(), nullable=False),
        sa.Column("data_classes", sa.JSON(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("determinations", sa.JSON(), nullable=False),
        sa.Column("impact", sa.JSON(), nullable=False),
        sa.Column("root_cause", sa.Text(), nullable=False),
        sa.Column("status_history", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("closed_at", _TS, nullable=True),
    )
    op.create_index("ix_incidents_status", "incidents", ["status"])
    op.create_table(
        "incident_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        _fk(),
        sa.Column("key_name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
    )
    op.create_index("ix_incident_keys_incident_id", "incident_keys", ["incident_id"])
    op.create_index("ix_incident_keys_key", "incident_keys", ["key_name", "version"])
    op.create_table(
        "incident_tasks",
        sa.Column("id", sa.Integer(), primary_key=True),
        _fk(),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(length=32), nullable=False),
        sa.Column("phase_due_at", _TS, nullable=False),
        sa.Column("phase_title", sa.JSON(), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("title", sa.JSON(), nullable=False),
        sa.Column("due_at", _TS, nullable=False),
        sa.Column("done_at", _TS, nullable=True),
        sa.Column("done_by", sa.String(length=128), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.UniqueConstraint("incident_id", "task_id"),
    )
    op.create_index("ix_incident_tasks_incident_id", "incident_tasks", ["incident_id"])
    op.create_table(
        "incident_obligations",
        sa.Column("id", sa.Integer(), primary_key=True),
        _fk(),
        sa.Column("regulation", sa.String(length=64), nullable=False),
        sa.Column("due_at", _TS, nullable=True),
        sa.Column("done_at", _TS, nullable=True),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.UniqueConstraint("incident_id", "regulation"),
    )
    op.create_index("ix_incident_obligations_incident_id", "incident_obligations", ["incident_id"])
    op.create_table(
        "incident_timeline",
        sa.Column("id", sa.Integer(), primary_key=True),
        _fk(),
        sa.Column("at", _TS, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index("ix_incident_timeline_incident_id", "incident_timeline", ["incident_id"])


def downgrade() -> None:
    for table in (
        "incident_timeline",
        "incident_obligations",
        "incident_tasks",
        "incident_keys",
        "incidents",
    ):
        op.drop_table(table)
