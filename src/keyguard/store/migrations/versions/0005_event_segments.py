"""imported events stored columnar: Parquet segments replace the imported_events rows

Revision ID: 0005
Revises: 0004

Row-per-event storage with the assessment indexes capped bulk imports near
20,000 events/s; segments (see keyguard.monitor.segments) store a batch as one
zstd Parquet file. Existing rows move into segments, one per source and 65,536
events, keeping their content hashes; the table and its indexes are then dropped.

The move is frozen here: the segment layout, the scratch workspace and the insert
are copied from keyguard.monitor.segments as they were when this revision was
written, so that later changes to the monitor cannot change what it does.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic import op

if TYPE_CHECKING:
    import duckdb

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

    conn = op.get_bind()
    columns = ", ".join(_STORED_COLUMNS)
    sources = [s for (s,) in conn.execute(sa.text("SELECT DISTINCT source FROM imported_events ORDER BY source"))]
    if not sources:
        return
    with _Workspace() as ws:
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
                _insert_segment(conn, ws, "kg_legacy", "id")


# The segment layout of revision 0005 (keyguard.monitor.segments.STORED_COLUMNS then).
_STORED_COLUMNS: tuple[str, ...] = (
    "content_hash", "ts", "actor", "source_ip", "user_agent", "op", "key", "version", "result",
    "reason", "request_id", "source", "source_file", "source_line",
)  # fmt: skip
_TYPES = {"version": "INTEGER", "source_line": "BIGINT"}
_CAST_SQL = ", ".join(f"CAST({c} AS {_TYPES.get(c, 'VARCHAR')}) AS {c}" for c in _STORED_COLUMNS)

# The two tables as upgrade() creates them, for the inserts of _insert_segment.
_META = sa.MetaData()
_SEGMENTS = sa.Table(
    "event_segments",
    _META,
    sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(length=16)),
    sa.Column("source_file", sa.Text()),
    sa.Column("rows", sa.Integer()),
    sa.Column("first_line", sa.BigInteger()),
    sa.Column("last_line", sa.BigInteger()),
    sa.Column("min_ts", sa.String(length=32)),
    sa.Column("max_ts", sa.String(length=32)),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("detected", sa.Boolean()),
    sa.Column("data", sa.LargeBinary()),
)
_KEYS = sa.Table(
    "event_segment_keys",
    _META,
    sa.Column("segment_id", _BIGID, primary_key=True),
    sa.Column("key", sa.String(length=256), primary_key=True),
    sa.Column("rows", sa.Integer()),
    sa.Column("min_ts", sa.String(length=32)),
    sa.Column("max_ts", sa.String(length=32)),
)


class _Workspace:
    """A private DuckDB connection and a 0700 scratch folder (keyguard.monitor.segments.Workspace then)."""

    def __init__(self) -> None:
        import duckdb

        self.dir = Path(tempfile.mkdtemp(prefix="keyguard-events-"))
        os.chmod(self.dir, 0o700)
        self.con: duckdb.DuckDBPyConnection = duckdb.connect(
            config={
                "threads": 2,
                "memory_limit": "1GB",
                "temp_directory": str(self.dir / "spill"),
                "preserve_insertion_order": True,
            }
        )
        self.con.execute("SET TimeZone = 'UTC'")
        self._names = itertools.count(1)

    def path(self, suffix: str) -> Path:
        return self.dir / f"f{next(self._names)}{suffix}"

    def write(self, data: bytes, suffix: str) -> Path:
        path = self.path(suffix)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return path

    def __enter__(self) -> _Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _insert_segment(conn: sa.Connection, ws: _Workspace, relation: str, order: str) -> int:
    """Encode the rows of DuckDB ``relation`` sorted by ``order`` as a segment; insert it.

    keyguard.monitor.segments.insert_segment then, for a new segment already detected.
    """
    con = ws.con
    path = ws.path(".parquet")
    con.execute(
        f"COPY (SELECT {_CAST_SQL} FROM {relation} ORDER BY {order}) TO '{path}' "
        "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, ROW_GROUP_SIZE 65536)"
    )
    keys = con.execute(
        "SELECT coalesce(key, '') AS k, count(*), min(ts), max(ts), min(source_line), max(source_line), "
        f"list(DISTINCT source_file), list(DISTINCT source) FROM {relation} GROUP BY k"
    ).fetchall()
    data = path.read_bytes()
    files = {f for row in keys for f in row[6]}
    values: dict[str, Any] = {
        "source": str(keys[0][7][0]),
        "source_file": files.pop() if len(files) == 1 else None,
        "rows": sum(int(row[1]) for row in keys),
        "first_line": min(int(row[4]) for row in keys),
        "last_line": max(int(row[5]) for row in keys),
        "min_ts": min(str(row[2]) for row in keys),
        "max_ts": max(str(row[3]) for row in keys),
        "created_at": datetime.now(UTC),
        "detected": True,
        "data": data,
    }
    new_id = conn.execute(sa.insert(_SEGMENTS).values(**values)).inserted_primary_key
    assert new_id is not None
    seg = int(new_id[0])
    conn.execute(
        sa.insert(_KEYS),
        [{"segment_id": seg, "key": row[0], "rows": int(row[1]), "min_ts": row[2], "max_ts": row[3]} for row in keys],
    )
    path.unlink()
    return seg


def downgrade() -> None:
    raise NotImplementedError("imported events are stored as segments from 0005 on; restore a backup to go back")
