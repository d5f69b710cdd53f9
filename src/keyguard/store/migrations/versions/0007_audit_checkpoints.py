"""audit checkpoints carry a monotonic counter

Revision ID: 0007
Revises: 0005

Every signed head of the audit chain now carries a counter that grows by one with
each signature, so a database restored to an older head cannot pass for the newer
one, and exported checkpoints (``keyguard audit checkpoint``) can be ordered.
Existing heads keep their first-format checkpoint (counter 0) until the next
write signs them anew. Self-contained: nothing here imports keyguard.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.add_column(sa.Column("counter", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.drop_column("counter")
