"""imported events stored columnar: Parquet segments replace the imported_events rows

Revision ID: 0005
Revises: 0004

Row-per-event storage with the assessment indexes capped bulk imports near
20,000 events/s; segments (see keyguard.monitor.segments) store a batch as one
zstd Parquet file. Existing rows move into segments, one per source and 65,536
events, keeping their content hashes; the table and its indexes are then dropped.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_CHUNK = 65_536


def upgrade() -> None:
    op.create_table(
        "event_segments",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_file", sa.Text(), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("first_line", sa.BigInteger(), nullable=False),
        sa.Column("last_line", sa.BigInteger(), nullable=False),
        sa.Column("min_ts", sa.String(length=32), nullable=False),
        sa.Column("max_ts", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detected", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_event_segments_source_ts", "event_segments", ["source", "min_ts", "max_ts"])
    op.create_index("ix_event_segments_detected", "event_segments", ["detected"])
    op.create_table(
        "event_segment_keys",
        sa.Column("segment_id", _BIGID, nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("min_ts", sa.String(length=32), nullable=False),
        sa.Column("max_ts", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["segment_id"], ["event_segments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("segment_id", "key"),
    )
    op.create_index("ix_event_segment_keys_key", "event_segment_keys", ["key", "max_ts"])
    _move_rows()
    op.drop_index("ix_imported_events_key_sources", "imported_events")
    op.drop_index("ix_imported_events_key_minute", "imported_events")
    op.drop_index("ix_imported_key_ts", "imported_events")
    op.drop_index("ix_imported_events_ts", "imported_events")
    op.drop_table("imported_events")


def _move_rows() -> None:
    """Copy the existing imported events into segments (nothing to do on a new database)."""
    import orjson

    from keyguard.monitor import segments

    conn = op.get_bind()
    columns = ", ".join(segments.STORED_COLUMNS)
    sources = [s for (s,) in conn.execute(sa.text("SELECT DISTINCT source FROM imported_events ORDER BY source"))]
    if not sources:
        return
    with segments.Workspace() as ws:
        for source in sources:
            last = 0
            while True:
                rows = conn.execute(
                    sa.text(
                        f"SELECT id, {columns} FROM imported_events "  # noqa: S608 - fixed names
                        "WHERE source = :source AND id > :last ORDER BY id LIMIT :n"
                    ),
                    {"source": source, "last": last, "n": _CHUNK},
                ).all()
                if not rows:
                    break
                last = int(rows[-1][0])
                path = ws.write(orjson.dumps([dict(r._mapping) for r in rows]), ".json")
                ws.con.execute(
                    f"CREATE OR REPLACE TEMP TABLE kg_legacy AS SELECT * FROM read_json('{path}', format = 'array')"
                )
                segments.insert_segment(conn, ws, "kg_legacy", "id")


def downgrade() -> None:
    raise NotImplementedError("imported events are stored as segments from 0005 on; restore a backup to go back")
