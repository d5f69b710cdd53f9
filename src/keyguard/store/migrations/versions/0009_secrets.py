"""versioned secrets: one row per version, the value sealed

Revision ID: 0009
Revises: 0008

``secret_versions`` holds every version of every named secret (``secret put``,
``secret rotate``); ``sealed`` is erased when a version is destroyed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "secret_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version", name="uq_secret_versions_name_version"),
    )
    op.create_index("ix_secret_versions_name", "secret_versions", ["name"])


def downgrade() -> None:
    op.drop_index("ix_secret_versions_name", table_name="secret_versions")
    op.drop_table("secret_versions")
