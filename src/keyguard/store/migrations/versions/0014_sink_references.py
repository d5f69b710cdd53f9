"""sink references: no webhook URL path (a Slack webhook's secret) left in alert_deliveries

Revision ID: 0014
Revises: 0008

Sinks used to be recorded under their URL without credentials but *with* the
path, and a Slack or chat webhook's path is its secret. Rows recorded before
this revision are rewritten to the reference form that sinks now use,
``scheme://host:port/…#fp=<12 hex of SHA-256>``, in ``sink`` and in ``error``.
For a webhook, or a Splunk HEC sink, whose URL had no query, the fingerprint is
the one the sink now computes, so its dead letters are still retried.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0009"
branch_labels = None
depends_on = None

_DELIVERIES = sa.table(
    "alert_deliveries",
    sa.column("id", sa.Integer()),
    sa.column("sink", sa.String(256)),
    sa.column("error", sa.Text()),
)
_PREFIXES = ("splunk+", "slack+", "")


def reference(name: str) -> str | None:
    """The reference form of an old sink name, or None when it holds no path to hide."""
    if "#fp=" in name:
        return None
    prefix = next(p for p in _PREFIXES if name.startswith(p))
    url = name[len(prefix) :]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.path.strip("/"):
        return None
    try:
        port = parts.port
    except ValueError:
        port = None
    host = f"{parts.hostname or ''}:{port}" if port else parts.hostname or ""
    fingerprint = hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]
    return f"{prefix}{parts.scheme}://{host}/…#fp={fingerprint}"


def scrub(conn: sa.Connection) -> int:
    """Rewrite every delivery row whose sink name shows a URL path; returns how many."""
    changed = 0
    rows = conn.execute(sa.select(_DELIVERIES.c.id, _DELIVERIES.c.sink, _DELIVERIES.c.error)).all()
    for row_id, sink, error in rows:
        new = reference(str(sink))
        if new is None:
            continue
        text = None if error is None else str(error).replace(str(sink), new)
        conn.execute(_DELIVERIES.update().where(_DELIVERIES.c.id == row_id).values(sink=new, error=text))
        changed += 1
    return changed


def upgrade() -> None:
    scrub(op.get_bind())


def downgrade() -> None:
    pass  # the paths are gone on purpose
