"""JWT signing keys: one row per generation, the newest signs

Revision ID: 0011
Revises: 0008

``generation`` is the primary key, so a rotation racing another node's
rotation fails on insert instead of producing a second active key. ``salt``
(with a sealed vault secret) derives the private half and is erased when the
generation is retired; ``public_key`` (SubjectPublicKeyInfo DER) stays for the
JWKS until every token the key signed has expired. Self-contained: nothing
here imports keyguard.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jwt_signing_keys",
        sa.Column("generation", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("algorithm", sa.String(8), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("salt", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("generation"),
        sa.UniqueConstraint("kid"),
    )


def downgrade() -> None:
    op.drop_table("jwt_signing_keys")
