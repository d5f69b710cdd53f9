"""Imported events, stored columnar: Parquet segments inside the database.

A bulk import of a month of CloudTrail cannot go row by row through a B-tree with
the indexes assessment needs (SQLite's own C code tops out near 60,000 such rows
a second here). Imported events are therefore kept the way log-analytics stores
keep them: each import batch becomes one immutable *segment*, a zstd Parquet file
held in ``event_segments.data``, and ``event_segment_keys`` says which keys a
segment holds and over which times, so readers only open the segments they need.
Segments live in the same database as everything else, so PostgreSQL nodes share
them and a batch commits atomically; DuckDB reads them for assessment, reports
and export.

De-duplication: every event has a content hash, computed in SQL here exactly as
:meth:`keyguard.monitor.event.MonitorEvent.content_hash` computes it. A batch is
anti-joined against the hashes of the stored segments of the same source whose
time range overlaps it, inside the write transaction (on PostgreSQL under an
advisory lock), so re-imports and concurrent importers never store an event twice.

Small segments (``watch`` stores a few events at a time) are merged into one once
:data:`MERGE_AT` of them pile up.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Table, delete, func, insert, select, text, update
from sqlalchemy.engine import Connection, Engine

from keyguard.store.monitor_tables import EventSegment, EventSegmentKey

if TYPE_CHECKING:
    import duckdb

    from keyguard.monitor.event import MonitorEvent

_SEGMENTS: Table = EventSegment.__table__  # type: ignore[assignment]
_KEYS: Table = EventSegmentKey.__table__  # type: ignore[assignment]

#: Columns of a batch handed to :func:`store_batch` (a DuckDB table), with their types, then
#: ``content_hash`` (:data:`CONTENT_HASH_SQL`). ``seq`` orders the batch (file order);
#: ``natural_id`` only feeds the content hash.
BATCH_COLUMNS: tuple[tuple[str, str], ...] = (
    ("seq", "BIGINT"),
    ("ts", "VARCHAR"),
    ("actor", "VARCHAR"),
    ("source_ip", "VARCHAR"),
    ("user_agent", "VARCHAR"),
    ("op", "VARCHAR"),
    ("key", "VARCHAR"),
    ("version", "INTEGER"),
    ("result", "VARCHAR"),
    ("reason", "VARCHAR"),
    ("request_id", "VARCHAR"),
    ("natural_id", "VARCHAR"),
    ("source", "VARCHAR"),
    ("source_file", "VARCHAR"),
    ("source_line", "BIGINT"),
)
#: Columns of a stored segment, in order.
STORED_COLUMNS: tuple[str, ...] = (
    "content_hash", "ts", "actor", "source_ip", "user_agent", "op", "key", "version", "result",
    "reason", "request_id", "source", "source_file", "source_line",
)  # fmt: skip
#: Segments below this many events count as small; :data:`MERGE_AT` small ones are merged.
SMALL_SEGMENT = 4096
MERGE_AT = 16
_PG_LOCK = 7310412

# The same identity as MonitorEvent.content_hash: the hour, then 88 bits of MD5 over the
# source's own id and time, or over every field when the source has no id.
CONTENT_HASH_SQL = (
    "substr(ts, 1, 4) || substr(ts, 6, 2) || substr(ts, 9, 2) || substr(ts, 12, 2) || left(md5("
    "CASE WHEN coalesce(natural_id, '') <> '' THEN concat_ws(chr(31), source, natural_id, ts) "
    "ELSE concat_ws(chr(31), source, coalesce(nullif(request_id, ''), 'line:' || CAST(source_line AS VARCHAR)), "
    "ts, actor, coalesce(source_ip, ''), coalesce(user_agent, ''), op, coalesce(key, ''), "
    "coalesce(CAST(version AS VARCHAR), ''), result, coalesce(reason, '')) END), 22)"
)
_STORED_SQL = ", ".join(STORED_COLUMNS)
_TYPES = {"version": "INTEGER", "source_line": "BIGINT"}
# Every segment gets the same Parquet schema, whatever produced its rows.
_CAST_SQL = ", ".join(f"CAST({c} AS {_TYPES.get(c, 'VARCHAR')}) AS {c}" for c in STORED_COLUMNS)
_PARQUET_OPTIONS = "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, ROW_GROUP_SIZE 65536)"
_EMPTY_SEGMENT_SQL = (
    "SELECT CAST(NULL AS VARCHAR) AS content_hash, CAST(NULL AS VARCHAR) AS ts, CAST(NULL AS VARCHAR) AS actor, "
    "CAST(NULL AS VARCHAR) AS source_ip, CAST(NULL AS VARCHAR) AS user_agent, CAST(NULL AS VARCHAR) AS op, "
    "CAST(NULL AS VARCHAR) AS key, CAST(NULL AS INTEGER) AS version, CAST(NULL AS VARCHAR) AS result, "
    "CAST(NULL AS VARCHAR) AS reason, CAST(NULL AS VARCHAR) AS request_id, CAST(NULL AS VARCHAR) AS source, "
    "CAST(NULL AS VARCHAR) AS source_file, CAST(NULL AS BIGINT) AS source_line WHERE false"
)


class Workspace:
    """A private DuckDB connection and a 0700 scratch folder for Parquet files.

    DuckDB runs with a memory limit and spills to the scratch folder, so imports
    stay within bounded memory whatever the batch size.
    """

    def __init__(self, *, threads: int = 2, memory_limit: str = "1GB") -> None:
        import duckdb

        self.dir = Path(tempfile.mkdtemp(prefix="keyguard-events-"))
        os.chmod(self.dir, 0o700)
        self.con: duckdb.DuckDBPyConnection = duckdb.connect(
            config={
                "threads": threads,
                "memory_limit": memory_limit,
                "temp_directory": str(self.dir / "spill"),
                "preserve_insertion_order": True,
            }
        )
        self.con.execute("SET TimeZone = 'UTC'")
        self._names = itertools.count(1)

    def fork(self) -> Workspace:
        """The same database and scratch folder on a second connection, for another thread."""
        other = object.__new__(Workspace)
        other.dir, other._names, other.con = self.dir, self._names, self.con.cursor()
        return other

    def path(self, suffix: str) -> Path:
        """A new file name in the scratch folder."""
        return self.dir / f"f{next(self._names)}{suffix}"

    def write(self, data: bytes | Sequence[bytes], suffix: str = ".parquet") -> Path:
        """Write ``data`` (or its parts, one after the other) to a new 0600 scratch file; return its path."""
        path = self.path(suffix)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            for part in [data] if isinstance(data, bytes) else data:
                handle.write(part)
        return path

    def close(self) -> None:
        """Close DuckDB and remove the scratch folder."""
        self.con.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_events(ws: Workspace, name: str, events: Sequence[MonitorEvent]) -> None:
    """Put Python-parsed events into a new batch table ``name`` (via one JSON file, read by DuckDB)."""
    path = ws.write(orjson.dumps(list(events)), ".json")  # MonitorEvent is a dataclass: orjson writes it natively
    columns = "{" + ", ".join(f"'{c}': '{t}'" for c, t in BATCH_COLUMNS if c != "seq") + "}"
    names = ", ".join(c for c, _ in BATCH_COLUMNS if c != "seq")
    ws.con.execute(
        f"CREATE OR REPLACE TABLE {name} AS SELECT *, {CONTENT_HASH_SQL} AS content_hash FROM ("
        f"SELECT row_number() OVER () AS seq, {names} "
        f"FROM read_json(?, format = 'array', columns = {columns}, maximum_object_size = 16777216))",
        [str(path)],
    )
    path.unlink()


@dataclass
class Stored:
    """What :func:`store_batch` did: events new to the store, duplicates dropped, where the new ones are."""

    fresh: int
    duplicates: int
    table: str
    segment_id: int | None = None
    file: Path | None = None  # a batch stored from its own Parquet file: that file (no table was made)
    tally: list[tuple[str, str, int]] | None = None  # (key or '', result, events), when already counted


def store_batch(
    conn: Connection,
    ws: Workspace,
    batch: str,
    *,
    keep: bool = False,
    detected: bool = True,
    parquet: Path | None = None,
) -> Stored:
    """Store the new events of DuckDB table ``batch`` as one segment, inside ``conn``'s transaction.

    The new events stay in DuckDB table ``Stored.table`` (the batch itself when
    every event is new) for detection, in batch order by ``seq``.

    With ``parquet`` the batch is that segment file instead (see :func:`copy_segment`;
    ``batch`` names no table yet). When every one of its events is new the file itself
    becomes the segment and ``Stored.file`` is where it is (``segment_file`` with
    ``keep``; the caller deletes it otherwise) and no table is made; else its rows go
    into table ``batch`` and are stored as any batch.
    """
    con = ws.con
    relation = batch if parquet is None else f"read_parquet('{parquet}')"
    summary: list[tuple[Any, ...]] | None = None
    if parquet is None:
        count, distinct, low, high, sources = con.execute(  # type: ignore[misc]
            f"SELECT count(*), count(DISTINCT content_hash), min(ts), max(ts), list(DISTINCT source) FROM {relation}"
        ).fetchone()
    else:  # one scan for the segment's keys, the metrics' tally and the time range, one for the hashes
        summary = con.execute(_SUMMARY_SQL.format(relation=relation)).fetchall()
        found = con.execute(f"SELECT count(DISTINCT content_hash) FROM {relation}").fetchone()
        distinct = int(found[0]) if found else 0
        count = sum(int(row[2]) for row in summary)
        low = min((str(row[3]) for row in summary), default=None)
        high = max((str(row[4]) for row in summary), default=None)
        sources = sorted({str(v) for row in summary for v in row[8]})
    if not count:
        if parquet is not None:
            load_parquet(ws, parquet, batch)
            parquet.unlink()
        return Stored(0, 0, batch)
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SELECT pg_advisory_xact_lock({_PG_LOCK})"))
    known = _attach(
        conn,
        ws,
        select(_SEGMENTS.c.data).where(
            _SEGMENTS.c.source.in_(sources), _SEGMENTS.c.min_ts <= high, _SEGMENTS.c.max_ts >= low
        ),
    )
    overlap = 0
    if known:
        # Only the stored events inside this batch's time range can be the same events.
        con.execute(
            f"CREATE OR REPLACE TABLE kg_known AS SELECT content_hash FROM read_parquet({_list(known)}) "
            "WHERE ts >= $low AND ts <= $high",
            {"low": low, "high": high},
        )
        for path in known:
            path.unlink()
        overlap = int(con.execute("SELECT count(*) FROM kg_known").fetchone()[0])  # type: ignore[index]
    if parquet is not None and summary is not None:
        if not overlap and distinct == count and len(sources) == 1:
            keys = _by_key(summary)
            segment_id = _insert_file(
                conn, ws, parquet, relation, keep=keep, detected=detected, delete=False, keys=keys
            )
            _merge_small(conn, ws, str(sources[0]))
            file = segment_file(ws, segment_id) if keep else parquet
            tally = [(str(row[0]), str(row[1]), int(row[2])) for row in summary]
            return Stored(int(count), 0, batch, segment_id, file, tally)
        load_parquet(ws, parquet, batch)
        parquet.unlink()
    fresh_table = batch
    if overlap or distinct != count:
        fresh_table = "kg_fresh"
        seen = "AND h.content_hash NOT IN (SELECT content_hash FROM kg_known)" if overlap else ""
        con.execute(
            f"CREATE OR REPLACE TABLE {fresh_table} AS SELECT * FROM {batch} h WHERE true {seen} "
            "QUALIFY row_number() OVER (PARTITION BY content_hash ORDER BY seq) = 1 ORDER BY seq"
        )
    fresh = int(con.execute(f"SELECT count(*) FROM {fresh_table}").fetchone()[0])  # type: ignore[index]
    if not fresh:
        return Stored(0, int(count), fresh_table)
    # Batch tables are written in seq order, and DuckDB keeps insertion order.
    segment_id = insert_segment(conn, ws, fresh_table, None, keep=keep, detected=detected)
    _merge_small(conn, ws, str(sources[0]))
    return Stored(fresh, int(count) - fresh, fresh_table, segment_id)


_SUMMARY_SQL = (
    "SELECT coalesce(key, '') AS k, result, count(*), min(ts), max(ts), min(source_line), max(source_line), "
    "list(DISTINCT source_file), list(DISTINCT source) FROM {relation} GROUP BY k, result"
)


def _by_key(summary: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows of :data:`_SUMMARY_SQL` (per key and result) merged per key, as ``_insert_file`` reads them."""
    merged: dict[str, list[Any]] = {}
    for k, _, rows, low, high, first, last, files, sources in summary:
        found = merged.get(k)
        if found is None:
            merged[k] = [k, int(rows), low, high, first, last, set(files), set(sources)]
            continue
        found[1] += int(rows)
        found[2], found[3] = min(found[2], low), max(found[3], high)
        found[4], found[5] = min(found[4], first), max(found[5], last)
        found[6].update(files)
        found[7].update(sources)
    return [(*row[:6], list(row[6]), list(row[7])) for row in merged.values()]


def _list(paths: Sequence[Path]) -> str:
    return "[" + ", ".join(f"'{p}'" for p in paths) + "]"


def _attach(conn: Connection, ws: Workspace, query: Any) -> list[Path]:
    """Write the segment blobs ``query`` selects to scratch files (one row at a time)."""
    paths: list[Path] = []
    for (data,) in conn.execute(query, execution_options={"yield_per": 16}):
        paths.append(ws.write(bytes(data)))
    return paths


def insert_segment(
    conn: Connection,
    ws: Workspace,
    relation: str,
    order: str | None,
    segment_id: int | None = None,
    *,
    keep: bool = False,
    detected: bool = True,
) -> int:
    """Encode the rows of DuckDB ``relation`` (sorted by ``order``, None: as they are) as a segment; insert it.

    With ``keep`` the Parquet file stays in the scratch folder as :func:`segment_file`.
    """
    con = ws.con
    path = ws.path(".parquet")
    con.execute(
        f"COPY (SELECT {_CAST_SQL} FROM {relation}{f' ORDER BY {order}' if order else ''}) TO '{path}' "
        + _PARQUET_OPTIONS
    )
    return _insert_file(conn, ws, path, f"read_parquet('{path}')", segment_id, keep=keep, detected=detected)


def copy_segment(ws: Workspace, query: str, params: dict[str, object], path: Path) -> int:
    """Write the rows of ``query`` (a batch's columns and ``content_hash``) as a segment's Parquet file.

    The file is what :func:`insert_segment` would write for the same rows; return how many.
    """
    found = ws.con.execute(f"COPY (SELECT {_CAST_SQL} FROM ({query})) TO '{path}' {_PARQUET_OPTIONS}", params)
    row = found.fetchone()
    return int(row[0]) if row else 0


def _insert_file(
    conn: Connection,
    ws: Workspace,
    path: Path,
    relation: str,
    segment_id: int | None = None,
    *,
    keep: bool,
    detected: bool,
    delete: bool = True,
    keys: list[tuple[Any, ...]] | None = None,
) -> int:
    """Insert the segment Parquet file ``path`` (its rows readable as ``relation``).

    ``keys``: its rows per key as the query here gives them, when already known.
    Then the file becomes :func:`segment_file` (``keep``), is deleted (``delete``) or is left.
    """
    con = ws.con
    if keys is None:
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
        "detected": detected,
        "data": data,
    }
    if segment_id is not None:
        values["id"] = segment_id
    new_id = conn.execute(insert(_SEGMENTS).values(**values)).inserted_primary_key
    assert new_id is not None
    seg = int(new_id[0])
    conn.execute(
        insert(_KEYS),
        [{"segment_id": seg, "key": row[0], "rows": int(row[1]), "min_ts": row[2], "max_ts": row[3]} for row in keys],
    )
    if keep:
        path.rename(segment_file(ws, seg))
    elif delete:
        path.unlink()
    return seg


def undetected(engine: Engine) -> list[int]:
    """Segments whose import stopped before its detection was committed, oldest first."""
    with engine.connect() as conn:
        query = select(_SEGMENTS.c.id).where(_SEGMENTS.c.detected.is_(False)).order_by(_SEGMENTS.c.id)
        return [int(i) for i in conn.execute(query).scalars()]


def mark_detected(conn: Connection, segment_ids: Sequence[int]) -> None:
    """Record, in the caller's transaction, that detection has seen these segments."""
    for start in range(0, len(segment_ids), 500):
        conn.execute(
            update(_SEGMENTS).where(_SEGMENTS.c.id.in_(segment_ids[start : start + 500])).values(detected=True)
        )


def load_segment(engine: Engine, ws: Workspace, segment_id: int, table: str) -> bool:
    """Put one stored segment into DuckDB table ``table`` (with ``seq`` in stored order); False if gone."""
    with engine.connect() as conn:
        data = conn.execute(select(_SEGMENTS.c.data).where(_SEGMENTS.c.id == segment_id)).scalar()
    if data is None:
        return False
    path = ws.write(bytes(data))
    load_parquet(ws, path, table)
    path.unlink()
    return True


def load_parquet(ws: Workspace, path: Path, table: str) -> None:
    """Put a segment's Parquet file into DuckDB table ``table``, with ``seq`` in stored order."""
    ws.con.execute(
        f"CREATE OR REPLACE TABLE {table} AS SELECT file_row_number AS seq, * "
        "FROM read_parquet(?, file_row_number = true)",
        [str(path)],
    )


def parquet_view(ws: Workspace, paths: Sequence[Path], name: str) -> None:
    """DuckDB view ``name`` over segments' Parquet files, one after the other (the files must stay).

    ``seq`` orders the rows: the file's place in ``paths`` times 2**32 plus the row's place in its file.
    """
    places = " ".join(f"WHEN '{path}' THEN {n << 32}" for n, path in enumerate(paths))
    ws.con.execute(
        f"CREATE OR REPLACE VIEW {name} AS SELECT CASE filename {places} END + file_row_number AS seq, "
        f"* EXCLUDE (filename) FROM read_parquet({_list(paths)}, file_row_number = true, filename = true)"
    )


def segment_file(ws: Workspace, segment_id: int) -> Path:
    """Where :func:`insert_segment` keeps a segment's Parquet file when asked to."""
    return ws.dir / f"segment-{segment_id}.parquet"


def _merge_small(conn: Connection, ws: Workspace, source: str) -> None:
    """Merge the small segments of ``source`` into one once :data:`MERGE_AT` of them exist."""
    ids = list(
        conn.execute(
            select(_SEGMENTS.c.id)
            .where(_SEGMENTS.c.source == source, _SEGMENTS.c.rows < SMALL_SEGMENT, _SEGMENTS.c.detected.is_(True))
            .order_by(_SEGMENTS.c.id)
            .limit(MERGE_AT)
        ).scalars()
    )
    if len(ids) < MERGE_AT:
        return
    paths = _attach(conn, ws, select(_SEGMENTS.c.data).where(_SEGMENTS.c.id.in_(ids)).order_by(_SEGMENTS.c.id))
    parts = " UNION ALL ".join(
        f"SELECT {_STORED_SQL}, {n} AS kg_part, file_row_number AS kg_row "
        f"FROM read_parquet('{p}', file_row_number = true)"
        for n, p in enumerate(paths)
    )
    conn.execute(delete(_KEYS).where(_KEYS.c.segment_id.in_(ids)))
    conn.execute(delete(_SEGMENTS).where(_SEGMENTS.c.id.in_(ids)))
    # The merged segment takes the first id, so export order (segment id, then file order) is kept.
    insert_segment(conn, ws, f"({parts})", "kg_part, kg_row", segment_id=ids[0])
    for path in paths:
        path.unlink()


def _segment_query(key: str | None, since: str | None) -> Any:
    query = select(_SEGMENTS.c.id, _SEGMENTS.c.data).order_by(_SEGMENTS.c.id)
    if since is not None:
        query = query.where(_SEGMENTS.c.max_ts >= since)
    if key is not None:
        hit = select(_KEYS.c.segment_id).where(_KEYS.c.key == key)
        if since is not None:
            hit = hit.where(_KEYS.c.max_ts >= since)
        query = query.where(_SEGMENTS.c.id.in_(hit))
    return query


def attach_view(
    engine: Engine, ws: Workspace, *, key: str | None = None, since: str | None = None, name: str = "imported_events"
) -> int:
    """Create DuckDB view ``name`` over the segments holding ``key`` (since ``since``); return how many.

    The view has the stored columns (see :data:`STORED_COLUMNS`); with no matching
    segment it is empty.
    """
    with engine.connect() as conn:
        paths = _attach(conn, ws, _segment_query(key, since).with_only_columns(_SEGMENTS.c.data))
    body = f"SELECT {_STORED_SQL} FROM read_parquet({_list(paths)})" if paths else _EMPTY_SEGMENT_SQL
    ws.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {body}")
    return len(paths)


def iter_records(
    engine: Engine, *, key: str | None = None, since: str | None = None, chunk: int = 10_000
) -> Iterator[dict[str, Any]]:
    """Imported events in store order (segment, then file order), one segment in memory at a time."""
    with engine.connect() as conn:
        ids = list(conn.execute(_segment_query(key, since).with_only_columns(_SEGMENTS.c.id)).scalars())
    where = ["true"]
    params: list[Any] = []
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if key is not None:
        where.append("key = ?")
        params.append(key)
    columns = [c for c in STORED_COLUMNS if c not in ("content_hash", "source_file")]
    with Workspace(threads=1) as ws:
        for segment_id in ids:
            with engine.connect() as conn:
                data = conn.execute(select(_SEGMENTS.c.data).where(_SEGMENTS.c.id == segment_id)).scalar()
            if data is None:
                continue  # merged away meanwhile; its events are in the merged segment
            path = ws.write(bytes(data))
            cursor = ws.con.execute(
                f"SELECT {', '.join(columns)} FROM read_parquet('{path}') WHERE {' AND '.join(where)}",
                params,
            )
            while rows := cursor.fetchmany(chunk):
                for row in rows:
                    yield dict(zip(columns, row, strict=True))
            path.unlink()


def count_events(engine: Engine) -> int:
    """How many imported events are stored."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(_SEGMENTS.c.rows), 0))).scalar_one())
