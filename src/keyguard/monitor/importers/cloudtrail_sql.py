"""CloudTrail parsed by DuckDB: the bulk path of ``audit import --format cloudtrail``.

The Python importer (:mod:`keyguard.monitor.importers.cloudtrail`) costs about
10 µs an event; DuckDB's vectorised JSON reader, run on chunks of the file, maps
the same fields in SQL at a fraction of that. It produces exactly what the Python
importer produces, and wherever it cannot vouch for that it hands the chunk (or
the file) to the Python importer instead:

* one record per line: the input is cut into chunks of whole lines written to a
  scratch file, and row *i* of DuckDB's result is line *i* of the chunk. A chunk
  whose row count differs from its line count (DuckDB skips blank lines), or that
  DuckDB refuses (a bad line, two records on a line, a field of an unexpected
  type), is parsed by the Python importer, which reports each bad line by number;
* ``{"Records": [...]}`` documents up to :data:`MAX_DOCUMENT` bytes are read whole;
  larger ones are streamed by the Python importer (constant memory).

Timestamps in CloudTrail's own form are normalised in SQL; any other form goes
through :func:`keyguard.monitor.timeutil.normalize_ts`, row by row.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb

from keyguard.monitor.importers.base import ImportOptions, Parsed, Rejected, open_input
from keyguard.monitor.importers.cloudtrail import _DENIED, _KMS_OPS
from keyguard.monitor.importers.cloudtrail import parse as parse_python
from keyguard.monitor.pipeline import BatchInfo, python_batches
from keyguard.monitor.segments import CONTENT_HASH_SQL, Workspace
from keyguard.monitor.timeutil import TimeFormatError, normalize_ts

CHUNK_BYTES = 48 << 20
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
    + " ".join(f"WHEN '{name}' THEN '{op}'" for name, op in _KMS_OPS.items())
    # as cloudtrail._op: a hyphen before every capital but the first, lower case, 64 characters
    + " ELSE left(lower(left(eventName, 1) || regexp_replace(substr(eventName, 2), '([A-Z])', '-\\1', 'g')), 64) END"
)
_MAP_SQL = f"""
SELECT rowid + $first AS seq, ts,
  left(coalesce(nullif(userIdentity.arn, ''), nullif(userIdentity.principalId, ''),
                nullif(userIdentity.userName, ''), ''), 256) AS actor,
  left(nullif(sourceIPAddress, ''), 64) AS source_ip,
  left(nullif(userAgent, ''), 512) AS user_agent,
  {_OP_SQL} AS op,
  left(coalesce(
    CASE WHEN eventSource = 'kms.amazonaws.com' THEN coalesce(
      nullif(requestParameters.keyId, ''), nullif(requestParameters.destinationKeyId, ''),
      nullif(requestParameters.sourceKeyId, ''), list_filter(resources, lambda r: r.ARN LIKE '%:key/%')[1].ARN) END,
    nullif(userIdentity.accessKeyId, '')), 256) AS key,
  CAST(NULL AS INTEGER) AS version,
  CASE WHEN coalesce(errorCode, '') = '' THEN 'ok' WHEN regexp_matches(errorCode, $denied) THEN 'denied'
       ELSE 'error' END AS result,
  left(CASE WHEN coalesce(errorCode, '') = '' THEN NULL
            WHEN coalesce(errorMessage, '') <> '' THEN errorCode || ': ' || errorMessage
            ELSE errorCode END, 4000) AS reason,
  left(nullif(requestID, ''), 128) AS request_id,
  eventID AS natural_id,
  'cloudtrail' AS source, CAST($file AS VARCHAR) AS source_file, rowid + $first AS source_line
FROM kg_ct_raw WHERE ts IS NOT NULL AND eventName IS NOT NULL
"""


class _Fallback(Exception):
    """DuckDB cannot vouch for this chunk: the Python importer parses it."""


def _lines_of(chunk: bytes) -> int:
    return chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)


def _finish(ws: Workspace, table: str, name: str | None, first: int) -> list[Rejected]:
    """Map ``kg_ct_raw`` (row ``rowid`` is record ``first + rowid``) into the batch ``table``.

    Returns the records that cannot be events, as rejections.
    """
    con = ws.con
    missing = con.execute(
        "SELECT rowid + $first FROM kg_ct_raw WHERE eventTime IS NULL OR eventName IS NULL", {"first": first}
    ).fetchall()
    rejected = [Rejected(int(line), "missing eventTime or eventName", name) for (line,) in missing]
    odd = con.execute(
        "SELECT rowid, eventTime FROM kg_ct_raw WHERE ts IS NULL AND eventTime IS NOT NULL AND eventName IS NOT NULL"
    ).fetchall()
    fixed: list[tuple[str, int]] = []
    for rowid, value in odd:
        try:
            fixed.append((normalize_ts(value), int(rowid)))
        except TimeFormatError as exc:
            rejected.append(Rejected(int(rowid) + first, str(exc), name))
    if fixed:
        con.executemany("UPDATE kg_ct_raw SET ts = ? WHERE rowid = ?", fixed)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT *, {CONTENT_HASH_SQL} AS content_hash FROM ({_MAP_SQL})",
        {"denied": f"(?i){_DENIED.pattern}", "file": name, "first": first},
    )
    rejected.sort(key=lambda r: r.source_line)
    return rejected


def _load_lines(
    ws: Workspace, table: str, chunk: bytes, lines: int, first_line: int, name: str | None
) -> list[Rejected]:
    """Parse a chunk of ``lines`` whole lines (numbered from ``first_line``) into ``table``; raise _Fallback."""
    path = ws.write(chunk, ".jsonl")
    try:
        ws.con.execute(
            f"CREATE OR REPLACE TEMP TABLE kg_ct_raw AS SELECT *, {_TS_SQL} AS ts "
            f"FROM read_json($path, format = 'newline_delimited', columns = {_LINE_COLUMNS}, "
            "maximum_object_size = 16777216)",
            {"path": str(path)},
        )
    except duckdb.Error:
        raise _Fallback from None
    finally:
        path.unlink()
    rows = ws.con.execute("SELECT count(*) FROM kg_ct_raw").fetchone()
    if rows is None or int(rows[0]) != lines:
        raise _Fallback  # DuckDB skips blank lines (and refuses two records on one line): numbering would drift
    return _finish(ws, table, name, first_line)


def _load_document(
    ws: Workspace, table: str, path: Path, name: str | None, size: int, compression: str
) -> list[Rejected]:
    """Parse a whole ``{"Records": [...]}`` file (one or several documents) into ``table``."""
    try:
        ws.con.execute(
            f"CREATE OR REPLACE TEMP TABLE kg_ct_raw AS SELECT *, {_TS_SQL} AS ts FROM (SELECT unnest(r) FROM "
            f"(SELECT unnest(Records) AS r FROM read_json($path, columns = {{'Records': '{_RECORD}[]'}}, "
            "format = 'auto', compression = $compression, maximum_object_size = $size)))",
            {"path": str(path), "compression": compression, "size": size + 1024},
        )
    except duckdb.Error:
        raise _Fallback from None
    return _finish(ws, table, name, 1)


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


def _rows(ws: Workspace) -> int:
    found = ws.con.execute("SELECT count(*) FROM kg_ct_raw").fetchone()
    return int(found[0]) if found else 0


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
                rejected = _load_document(ws, table, path, name, size, compression)
            except _Fallback:
                yield from python_batches(ws, table, parse_python(stream, name=name, options=options))
            else:
                yield BatchInfo(_rows(ws), rejected)
            return
        first = 1
        while chunk := stream.read(CHUNK_BYTES):
            if not chunk.endswith(b"\n"):
                chunk += stream.readline()
            lines = _lines_of(chunk)
            try:
                rejected = _load_lines(ws, table, chunk, lines, first, name)
            except _Fallback:
                parsed = parse_python(io.BufferedReader(io.BytesIO(chunk)), name=name, options=options)
                yield from python_batches(ws, table, _renumbered(parsed, first - 1))
            else:
                yield BatchInfo(_rows(ws), rejected)
            first += lines
