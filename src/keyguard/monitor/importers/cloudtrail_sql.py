"""CloudTrail parsed by DuckDB: the bulk path of ``audit import --format cloudtrail``.

The Python importer (:mod:`keyguard.monitor.importers.cloudtrail`) costs about
10 µs an event; DuckDB's vectorised JSON reader, run on chunks of the file, maps
the same fields in SQL at a fraction of that. It produces exactly what the Python
importer produces, and wherever it cannot vouch for that it hands the chunk (or
the file) to the Python importer instead:

* one record per line: the input is cut into chunks of whole lines written to a
  scratch file, and row *i* of DuckDB's result is line *i* of the chunk. A *clean*
  chunk (every line one record with a time and a name in CloudTrail's own form) is
  mapped straight into the Parquet file of its segment (``COPY ... TO``): no
  batch table, no second encoding. Any other chunk is mapped into a batch table,
  where rejections and odd timestamps are handled; one whose row count differs from
  its line count (DuckDB skips blank lines), or that DuckDB refuses (a bad line, two
  records on a line, a field of an unexpected type), is parsed by the Python
  importer, which reports each bad line by number;
* ``{"Records": [...]}`` documents up to :data:`MAX_DOCUMENT` bytes are read whole;
  larger ones are streamed by the Python importer (constant memory).

Timestamps in CloudTrail's own form are normalised in SQL; any other form goes
through :func:`keyguard.monitor.timeutil.normalize_ts`, row by row.
"""

from __future__ import annotations

import io
import re
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO

import duckdb
import numpy as np

from keyguard.monitor.batches import BatchInfo, python_batches
from keyguard.monitor.importers.base import ImportOptions, Parsed, Rejected, open_input
from keyguard.monitor.importers.cloudtrail import DENIED_CODES, KMS_OPERATIONS
from keyguard.monitor.importers.cloudtrail import parse as parse_python
from keyguard.monitor.segments import CONTENT_HASH_SQL, Workspace, copy_segment
from keyguard.monitor.timeutil import TimeFormatError, normalize_ts

# Just under 32 MB: glibc's malloc serves a block below 32 MB from its heap once one that size
# has been freed, so each chunk's buffer reuses memory; at 32 MB every chunk would be fresh
# mmap'd pages (faulted and zeroed again, ~0.3 s of CPU a million events here).
CHUNK_BYTES = 31 << 20
#: Chunks mapped at once, each on a DuckDB connection of its own (one core each).
PARSERS = 2
MAX_DOCUMENT = 64 << 20
_ARRAY_HEAD = re.compile(rb'^\s*\{\s*"Records"\s*:\s*\[')

_RECORD = (
    "STRUCT(eventTime VARCHAR, eventName VARCHAR, eventSource VARCHAR, "
    "userIdentity STRUCT(arn VARCHAR, principalId VARCHAR, userName VARCHAR, accessKeyId VARCHAR), "
    "sourceIPAddress VARCHAR, userAgent VARCHAR, errorCode VARCHAR, errorMessage VARCHAR, requestID VARCHAR, "
    "eventID VARCHAR, requestParameters STRUCT(keyId VARCHAR, destinationKeyId VARCHAR, sourceKeyId VARCHAR), "
    "resources STRUCT(ARN VARCHAR)[])"
)
_LINE_COLUMNS = (
    "{'eventTime': 'VARCHAR', 'eventName': 'VARCHAR', 'eventSource': 'VARCHAR', "
    "'userIdentity': 'STRUCT(arn VARCHAR, principalId VARCHAR, userName VARCHAR, accessKeyId VARCHAR)', "
    "'sourceIPAddress': 'VARCHAR', 'userAgent': 'VARCHAR', 'errorCode': 'VARCHAR', 'errorMessage': 'VARCHAR', "
    "'requestID': 'VARCHAR', 'eventID': 'VARCHAR', "
    "'requestParameters': 'STRUCT(keyId VARCHAR, destinationKeyId VARCHAR, sourceKeyId VARCHAR)', "
    "'resources': 'STRUCT(ARN VARCHAR)[]'}"
)
# CloudTrail's own form, 2026-01-05T10:00:00Z, normalised in SQL; anything else in Python.
_TS_SQL = (
    "CASE WHEN regexp_full_match(eventTime, '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ') "
    "AND try_strptime(eventTime, '%Y-%m-%dT%H:%M:%SZ') IS NOT NULL "
    "THEN substr(eventTime, 1, 19) || '.000000Z' END"
)
_OP_SQL = (
    "CASE eventName "
    + " ".join(f"WHEN '{name}' THEN '{op}'" for name, op in KMS_OPERATIONS.items())
    # as cloudtrail._op: a hyphen before every capital but the first, lower case, 64 characters
    + " ELSE left(lower(left(eventName, 1) || regexp_replace(substr(eventName, 2), '([A-Z])', '-\\1', 'g')), 64) END"
)


def _cut(value: str, width: int) -> str:
    """``left(value, width)`` (characters, as Python's ``[:width]``), skipped when the bytes already fit.

    A string of at most ``width`` bytes has at most ``width`` characters, so only longer
    ones pay for counting characters.
    """
    return f"CASE WHEN strlen({value}) <= {width} THEN {value} ELSE left({value}, {width}) END"


_ACTOR = (
    "coalesce(nullif(userIdentity.arn, ''), nullif(userIdentity.principalId, ''), "
    "nullif(userIdentity.userName, ''), '')"
)
# One pass from DuckDB's reader to the batch: ``{source}`` yields the CloudTrail columns and
# ``{line}`` numbers them. ``kg_time`` / ``kg_name`` keep what the rejection checks need.
# The key is a CASE, not nested coalesce: CASE branches run only on their rows, so the
# ``resources`` filter runs only on the KMS calls that name no key in their parameters.
_MAP_SQL = f"""
SELECT {{line}} AS seq, {_TS_SQL} AS ts,
  {_cut(_ACTOR, 256)} AS actor,
  {_cut("nullif(sourceIPAddress, '')", 64)} AS source_ip,
  {_cut("nullif(userAgent, '')", 512)} AS user_agent,
  {_OP_SQL} AS op,
  left(CASE WHEN eventSource <> 'kms.amazonaws.com' OR eventSource IS NULL THEN nullif(userIdentity.accessKeyId, '')
    WHEN requestParameters.keyId <> '' THEN requestParameters.keyId
    WHEN requestParameters.destinationKeyId <> '' THEN requestParameters.destinationKeyId
    WHEN requestParameters.sourceKeyId <> '' THEN requestParameters.sourceKeyId
    ELSE coalesce(list_filter(resources, lambda r: r.ARN LIKE '%:key/%')[1].ARN, nullif(userIdentity.accessKeyId, ''))
    END, 256) AS key,
  CAST(NULL AS INTEGER) AS version,
  CASE WHEN coalesce(errorCode, '') = '' THEN 'ok' WHEN regexp_matches(errorCode, $denied) THEN 'denied'
       ELSE 'error' END AS result,
  left(CASE WHEN coalesce(errorCode, '') = '' THEN NULL
            WHEN coalesce(errorMessage, '') <> '' THEN errorCode || ': ' || errorMessage
            ELSE errorCode END, 4000) AS reason,
  {_cut("nullif(requestID, '')", 128)} AS request_id,
  eventID AS natural_id,
  'cloudtrail' AS source, CAST($file AS VARCHAR) AS source_file, {{line}} AS source_line,
  eventTime AS kg_time, eventName AS kg_name
FROM {{source}}
"""
_LINES_SOURCE = (
    f"read_json($path, format = 'newline_delimited', columns = {_LINE_COLUMNS}, maximum_object_size = 16777216) "
    "WITH ORDINALITY"
)
_DOCUMENT_SOURCE = (
    "(SELECT unnest(r) FROM (SELECT unnest(Records) AS r FROM read_json($path, "
    f"columns = {{'Records': '{_RECORD}[]'}}, format = 'auto', compression = $compression, "
    "maximum_object_size = $size))) WITH ORDINALITY"
)


_UNCLEAN = "keyguard: chunk not clean"


class _Fallback(Exception):
    """DuckDB cannot vouch for this chunk: the Python importer parses it."""


def _lines_of(parts: list[bytes]) -> int:
    """Lines in a chunk given as parts (only the last may lack its newline)."""
    last = next((part for part in reversed(parts) if part), b"\n")
    newlines = 0
    step = 1 << 20  # numpy counts a few times faster than bytes.count; a megabyte at a time bounds its scratch
    for part in parts:
        for start in range(0, len(part), step):
            piece = np.frombuffer(part, np.uint8, min(step, len(part) - start), start)
            newlines += int(np.count_nonzero(piece == 10))
    return newlines + (0 if last.endswith(b"\n") else 1)


def _load(
    ws: Workspace, table: str, source: str, params: dict[str, object], name: str | None
) -> tuple[int, list[Rejected]]:
    """Read and map ``source`` into the batch ``table``; return the records read and the rejected ones."""
    con = ws.con
    sql = _MAP_SQL.replace("{source}", source).replace("{line}", "ordinality + $first - 1")
    try:
        con.execute(
            f"CREATE OR REPLACE TABLE {table} AS SELECT *, {CONTENT_HASH_SQL} AS content_hash FROM ({sql})",
            {**params, "denied": f"(?i){DENIED_CODES.pattern}", "file": name},
        )
    except duckdb.Error:
        raise _Fallback from None
    found = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    read = int(found[0]) if found else 0
    missing = con.execute(f"SELECT seq FROM {table} WHERE kg_time IS NULL OR kg_name IS NULL").fetchall()
    rejected = [Rejected(int(line), "missing eventTime or eventName", name) for (line,) in missing]
    odd = con.execute(
        f"SELECT seq, kg_time FROM {table} WHERE ts IS NULL AND kg_time IS NOT NULL AND kg_name IS NOT NULL"
    ).fetchall()
    fixed: list[tuple[str, int]] = []
    for line, value in odd:
        try:
            fixed.append((normalize_ts(value), int(line)))
        except TimeFormatError as exc:
            rejected.append(Rejected(int(line), str(exc), name))
    if fixed:
        con.executemany(f"UPDATE {table} SET ts = ? WHERE seq = ?", fixed)
        con.execute(f"UPDATE {table} SET content_hash = {CONTENT_HASH_SQL} WHERE content_hash IS NULL")
    if rejected:
        con.execute(f"DELETE FROM {table} WHERE ts IS NULL OR kg_name IS NULL")
    rejected.sort(key=lambda r: r.source_line)
    return read, rejected


def _copy_clean(ws: Workspace, path: Path, lines: int, first_line: int, name: str | None) -> Path | None:
    """Map a chunk file straight into a segment's Parquet file; None if the chunk is not clean.

    Clean: DuckDB reads one row per line, and every row has a time in CloudTrail's
    own form and a name (``content_hash`` and ``op`` are NULL exactly when one of
    them is missing or odd), so there is nothing to reject or normalise in Python.
    """
    sql = _MAP_SQL.replace("{source}", _LINES_SOURCE).replace("{line}", "ordinality + $first - 1")
    params = {"path": str(path), "first": first_line, "denied": f"(?i){DENIED_CODES.pattern}", "file": name}
    # error() aborts the copy at the first row that is not clean: the table path takes the chunk.
    checked = (
        f"SELECT * REPLACE (CASE WHEN content_hash IS NULL OR op IS NULL THEN error('{_UNCLEAN}') "
        f"ELSE content_hash END AS content_hash) FROM (SELECT *, {CONTENT_HASH_SQL} AS content_hash FROM ({sql}))"
    )
    segment = ws.path(".parquet")
    try:
        rows = copy_segment(ws, checked, params, segment)
    except duckdb.Error:
        segment.unlink(missing_ok=True)
        return None
    if rows != lines:
        segment.unlink()
        return None
    return segment


def _clean_chunk(ws: Workspace, chunk: list[bytes], lines: int, first_line: int, name: str | None) -> Path | None:
    """A chunk of ``lines`` whole lines (from line ``first_line``) as a segment Parquet file; None if not clean."""
    path = ws.write(chunk, ".jsonl")
    try:
        return _copy_clean(ws, path, lines, first_line, name)
    finally:
        path.unlink()


def _load_lines(
    ws: Workspace, table: str, chunk: list[bytes], lines: int, first_line: int, name: str | None
) -> tuple[int, list[Rejected]]:
    """Parse a chunk that is not clean into ``table`` (rejections, odd times); raise _Fallback."""
    path = ws.write(chunk, ".jsonl")
    try:
        read, rejected = _load(ws, table, _LINES_SOURCE, {"path": str(path), "first": first_line}, name)
    finally:
        path.unlink()
    if read != lines:
        raise _Fallback  # DuckDB skips blank lines (and refuses two records on one line): numbering would drift
    return read, rejected


def _load_document(
    ws: Workspace, table: str, path: Path, name: str | None, size: int, compression: str
) -> tuple[int, list[Rejected]]:
    """Parse a whole ``{"Records": [...]}`` file (one or several documents) into ``table``."""
    params: dict[str, object] = {"path": str(path), "compression": compression, "size": size + 1024, "first": 1}
    return _load(ws, table, _DOCUMENT_SOURCE, params, name)


def _document_size(path: Path) -> tuple[int, str]:
    """The size of ``path`` once decompressed (gzip keeps it modulo 2**32 in its last four bytes)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            return size, "none"
        handle.seek(-4, io.SEEK_END)
        return max(int.from_bytes(handle.read(4), "little"), size), "gzip"


def _renumbered(items: Iterator[Parsed], offset: int) -> Iterator[Parsed]:
    for item in items:
        if isinstance(item, Rejected):
            yield Rejected(item.source_line + offset, item.reason, item.source_file)
        else:
            item.source_line += offset
            yield item


def cloudtrail_batches(
    ws: Workspace, table: str, path: Path | None, on_read: Callable[[int], None] | None = None
) -> Iterator[BatchInfo]:
    """Fill ``table`` with one batch after another from the CloudTrail file ``path`` (None: stdin)."""
    name = None if path is None else str(path)
    options = ImportOptions()
    with open_input(path, on_read) as stream:
        peek = getattr(stream, "peek", None)
        head = bytes(peek(256)[:256]) if peek is not None else b""
        if _ARRAY_HEAD.match(head):
            try:
                if path is None:
                    raise _Fallback
                size, compression = _document_size(path)
                if size > MAX_DOCUMENT:
                    raise _Fallback
                read, rejected = _load_document(ws, table, path, name, size, compression)
                if on_read is not None:
                    on_read(path.stat().st_size)  # DuckDB read the file itself: move the progress bar
            except _Fallback:
                yield from python_batches(ws, table, parse_python(stream, name=name, options=options))
            else:
                yield BatchInfo(read, rejected)
            return
        yield from _line_batches(ws, table, stream, name, options)


def _chunks(stream: IO[bytes]) -> Iterator[tuple[list[bytes], int, int]]:
    """The input cut into chunks of whole lines: (parts, lines, number of the first line)."""
    first = 1
    while chunk := stream.read(CHUNK_BYTES):
        # the rest of the last line, kept apart: joining would copy the whole chunk again
        parts = [chunk] if chunk.endswith(b"\n") else [chunk, stream.readline()]
        lines = _lines_of(parts)
        yield parts, lines, first
        first += lines


def _line_batches(
    ws: Workspace, table: str, stream: IO[bytes], name: str | None, options: ImportOptions
) -> Iterator[BatchInfo]:
    """One batch per chunk of a one-record-per-line input, in order.

    :data:`PARSERS` chunks are mapped at once, each on a DuckDB connection (and a
    core) of its own, straight into their segment files; a chunk that is not clean
    is then loaded into ``table`` here, in its turn.
    """
    parsers = [ws.fork() for _ in range(PARSERS)]
    pending: deque[tuple[Future[Path | None], list[bytes], int, int]] = deque()
    try:
        with ThreadPoolExecutor(PARSERS, thread_name_prefix="keyguard-parse") as pool:
            chunks = _chunks(stream)
            for n, (parts, lines, first) in enumerate(chunks):
                parser = parsers[n % PARSERS]  # the chunk PARSERS back, on this one, is done
                pending.append((pool.submit(_clean_chunk, parser, parts, lines, first, name), parts, lines, first))
                if len(pending) == PARSERS:
                    yield from _finish_chunk(ws, table, pending.popleft(), name, options)
            while pending:
                yield from _finish_chunk(ws, table, pending.popleft(), name, options)
    finally:  # stopped early: the chunks parsed ahead are not stored (the pool has finished them)
        for future, *_ in pending:
            segment = None if future.cancelled() or future.exception() is not None else future.result()
            if segment is not None:
                segment.unlink(missing_ok=True)
        for parser in parsers:
            parser.con.close()


def _finish_chunk(
    ws: Workspace,
    table: str,
    item: tuple[Future[Path | None], list[bytes], int, int],
    name: str | None,
    options: ImportOptions,
) -> Iterator[BatchInfo]:
    """The batch of a chunk handed to a parser: its segment file, else the batch table, else Python."""
    future, parts, lines, first = item
    segment = future.result()
    if segment is not None:
        yield BatchInfo(lines, [], segment)
        return
    try:
        read, rejected = _load_lines(ws, table, parts, lines, first, name)
    except _Fallback:
        whole = b"".join(parts)
        parsed = parse_python(io.BufferedReader(io.BytesIO(whole)), name=name, options=options)
        yield from python_batches(ws, table, _renumbered(parsed, first - 1))
    else:
        yield BatchInfo(read, rejected)
