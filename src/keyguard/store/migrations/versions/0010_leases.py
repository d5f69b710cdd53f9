"""leases and scheduled rotations

Revision ID: 0010
Revises: 0008

``leases``: one row per dynamic credential (written before the user is created, so a
crash cannot leak one), no password. ``scheduled_rotations``: one row per key and due
slot; the unique constraint is what lets exactly one node of a cluster claim it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("id", sa.String(length=160), nullable=False),
        sa.Column("path", sa.String(length=140), nullable=False),
        sa.Column("connector", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("backend", sa.String(length=16), nullable=False),
        sa.Column("username", sa.String(length=63), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=256), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_index("ix_leases_path", "leases", ["path"])
    op.create_index("ix_leases_state_expires", "leases", ["state", "expires_at"])
    op.create_table(
        "scheduled_rotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_name", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.String(length=32), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("node", sa.String(length=128), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_name", "slot", name="uq_scheduled_rotations_slot"),
    )
    op.create_index("ix_scheduled_rotations_key_name", "scheduled_rotations", ["key_name"])


def downgrade() -> None:
    op.drop_table("scheduled_rotations")
    op.drop_index("ix_leases_state_expires", table_name="leases")
    op.drop_index("ix_leases_path", table_name="leases")
    op.drop_table("leases")
