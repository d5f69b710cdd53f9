"""alert groups: the source of an alert, so that repeats group by rule, key and source

Revision ID: 0006
Revises: 0005

``alerts.source`` is who or where the alert's event came from (the actor, else the
source IP); ``alert list --group`` and the dashboard fold the alerts of one rule,
key and source into one line with a count and the first and last time. Existing
alerts get their source from the event kept in their details.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _source(details: Any) -> str | None:
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except ValueError:
            return None
    event = details.get("event") if isinstance(details, dict) else None
    if not isinstance(event, dict):
        return None
    value = event.get("actor") or event.get("source_ip")
    return str(value)[:256] if value else None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("source", sa.String(256), nullable=True))
    op.create_index("ix_alerts_source_group", "alerts", ["rule", "key", "source"])
    conn = op.get_bind()
    alerts = sa.table("alerts", sa.column("id", sa.Integer), sa.column("details", sa.JSON), sa.column("source"))
    rows = conn.execute(sa.select(alerts.c.id, alerts.c.details)).all()
    updates = [{"b_id": r.id, "b_source": s} for r in rows if (s := _source(r.details)) is not None]
    if updates:
        conn.execute(
            alerts.update().where(alerts.c.id == sa.bindparam("b_id")).values(source=sa.bindparam("b_source")),
            updates,
        )


def downgrade() -> None:
    op.drop_index("ix_alerts_source_group", "alerts")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("source")
