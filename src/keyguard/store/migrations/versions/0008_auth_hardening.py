"""auth hardening: per-client TOTP state (each code once, lockout after wrong codes)

Revision ID: 0008
Revises: 0005

``client_otp`` keeps, per client, the last accepted TOTP time step (a code is
accepted only for a later step: a conditional UPDATE, so two nodes on one
database cannot both accept it), the failures in the current window and when
the lockout they caused ends. Clients already enrolled get their row here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "client_otp",
        sa.Column("client_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lockouts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("client_id"),
    )
    op.execute(
        "INSERT INTO client_otp (client_id, last_step, failures, lockouts) "
        "SELECT id, 0, 0, 0 FROM clients WHERE totp_sealed IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("client_otp")
