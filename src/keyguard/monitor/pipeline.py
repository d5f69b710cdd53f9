"""The import pipeline: parse into DuckDB, store segments, detect, in three stages.

A *batch source* (:mod:`keyguard.monitor.batches`) fills a DuckDB table with one
batch of events at a time and yields a :class:`~keyguard.monitor.batches.BatchInfo`
after each. One thread runs the source; a second stores each batch as a segment
in its own transaction and hands the new events, as columns, to the calling
thread, which runs detection and saves alerts. DuckDB and the database drivers
release the GIL while they work, so parsing batch *n + 2*, storing batch *n + 1*
and detecting on batch *n* overlap; only a few batches are ever in flight, so
memory stays flat.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
from sqlalchemy import Engine

from keyguard.monitor import metrics
from keyguard.monitor.alerts import save_alerts
from keyguard.monitor.batches import BatchInfo, BatchSource, ImportStats
from keyguard.monitor.detect.columns import CodedColumn, EventColumns
from keyguard.monitor.detect.engine import DetectionEngine
from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.segments import (
    Workspace,
    load_events,
    load_parquet,
    load_segment,
    segment_file,
    store_batch,
    undetected,
)
from keyguard.store.db import write_tx

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

    from keyguard.monitor.detect_process import DetectionProcess

IN_FLIGHT = 2
_TABLE = "kg_batch"


@dataclass
class _Stored:
    info: BatchInfo
    fresh: int
    duplicates: int
    tally: list[tuple[str, str, int]]
    columns: tuple[str, EventColumns] | None  # the DuckDB table the lazy columns read, and the columns
    file: Path | None = None  # the stored segment's Parquet file, for a detection process
    segment_id: int | None = None


# read at every event, or at every refused call (op, reason: few distinct values, so coded too)
_HOT = ("key", "result", "actor", "source_ip", "user_agent", "op", "reason")
_COLD = ("ts", "request_id", "source", "source_line", "source_file")  # read at the events that fire
# timeutil.ts_epoch in SQL, operation for operation (whole seconds as an integer, then the fraction):
# only for a time DuckDB does not take as a TIMESTAMP (a leap second); the others come as microseconds.
_EPOCH_SQL = (
    "CASE WHEN substr(ts, 21, 6) = '000000' THEN CAST(epoch_s AS DOUBLE) "
    "ELSE CAST(epoch_s AS DOUBLE) + CAST(substr(ts, 21, 6) AS BIGINT) / 1000000.0 END"
)
_SECONDS_SQL = (
    "CAST(epoch(CAST(substr(ts, 1, 10) AS DATE)) AS BIGINT) + CAST(substr(ts, 12, 2) AS BIGINT) * 3600 "
    "+ CAST(substr(ts, 15, 2) AS BIGINT) * 60 + CAST(substr(ts, 18, 2) AS BIGINT)"
)


def _epochs(con: DuckDBPyConnection, table: str, micros: Any) -> list[float]:
    """``timeutil.ts_epoch`` of every event, from its time in microseconds (NULL: not a TIMESTAMP).

    ``ts_epoch`` adds the fraction to the whole seconds last; floor division and a
    float division of exact integers give the same operations, bit for bit.
    """
    if np.ma.is_masked(micros):
        query = f"SELECT {_EPOCH_SQL} AS epoch FROM (SELECT *, {_SECONDS_SQL} AS epoch_s FROM {table})"
        return con.execute(query).fetchnumpy()["epoch"].tolist()  # type: ignore[no-any-return]
    micros = np.asarray(micros, dtype=np.int64)
    seconds = np.floor_divide(micros, 1_000_000)
    fraction = micros - seconds * 1_000_000
    return (seconds.astype(np.float64) + fraction / 1_000_000).tolist()  # type: ignore[no-any-return]


class _ColdRows:
    """The rarely read columns of a DuckDB batch table, fetched together for the events asked about."""

    def __init__(self, con: DuckDBPyConnection, table: str, columns: tuple[str, ...], seqs: Any) -> None:
        self._con, self._table, self._columns, self.seqs = con, table, columns, seqs
        self.some: dict[str, dict[int, Any]] = {name: {} for name in columns}
        self._asked: set[int] = set()

    def prefetch(self, indices: list[int]) -> None:
        """Fetch every cold column at events ``indices`` in one query (those not fetched yet)."""
        wanted = [i for i in indices if i not in self._asked]
        if not wanted:
            return
        self._asked.update(wanted)
        by_seq = {int(self.seqs[i]): i for i in wanted}
        rows = self._con.execute(
            f"SELECT seq, {', '.join(self._columns)} FROM {self._table} WHERE seq IN (SELECT unnest($1::BIGINT[]))",
            [list(by_seq)],
        ).fetchall()
        for seq, *values in rows:
            i = by_seq[int(seq)]
            for name, value in zip(self._columns, values, strict=True):
                self.some[name][i] = value

    def whole(self, column: str) -> list[Any]:
        """Every value of ``column``, in batch order."""
        found = self._con.execute(f"SELECT {column} FROM {self._table}").fetchnumpy()
        return found[column].tolist()  # type: ignore[no-any-return]


class DuckColumn(Sequence[Any]):
    """A column of a DuckDB batch table, read only where asked.

    Detection reads these columns at the few events that fire; it says which ones
    first (:meth:`prefetch`, one query for all such columns). Any other read fetches
    the whole column.
    """

    def __init__(self, rows: _ColdRows, column: str) -> None:
        self._rows, self._column = rows, column
        self._values: list[Any] | None = None
        self._some = rows.some[column]

    def __len__(self) -> int:
        return len(self._rows.seqs)

    def prefetch(self, indices: list[int]) -> None:
        """Fetch the values of events ``indices`` (with the other cold columns)."""
        if self._values is None:
            self._rows.prefetch(indices)

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, int) and index in self._some:
            return self._some[index]
        if self._values is None:
            self._values = self._rows.whole(self._column)
        return self._values[index]


def fresh_columns(con: DuckDBPyConnection, table: str, lazy: DuckDBPyConnection | None = None) -> EventColumns:
    """The events of DuckDB table ``table`` as detection columns, in batch order.

    Batch tables are written in ``seq`` order and DuckDB keeps insertion order
    (``preserve_insertion_order``), so plain scans read them in batch order.

    The columns every detector reads come at once, each string column as 64-bit
    hashes (numpy, no Python object per event) turned into codes into a small
    dictionary of its distinct values (one scan for all of them), so that a value
    repeated a million times is one Python string. The other columns are
    :class:`DuckColumn`, read through ``lazy`` (default ``con``), so ``table`` must
    outlive the detection of the batch.
    """
    hashed = ", ".join(f"hash({name}) AS {name}" for name in _HOT)
    hot = con.execute(
        f"SELECT seq, {hashed}, version, epoch_us(TRY_CAST(ts AS TIMESTAMP)) AS micros FROM {table}"
    ).fetchnumpy()
    values: dict[str, Any] = {"epoch": _epochs(con, table, hot["micros"]), "version": hot["version"].tolist()}
    coded: dict[str, tuple[Any, list[Any]]] = {}
    for name, (hashes, dictionary) in _dictionaries(con, table).items():
        if len(hashes) != len(dictionary) or len(set(hashes)) != len(hashes):
            # two values share a hash: fetch this column as it is
            values[name] = con.execute(f"SELECT {name} FROM {table}").fetchnumpy()[name].tolist()
            continue
        order = np.argsort(np.asarray(hashes, dtype=np.uint64))
        found = np.asarray(hashes, dtype=np.uint64)[order]
        codes = np.searchsorted(found, hot[name]).astype(np.int64, copy=False)
        ordered = [dictionary[i] for i in order.tolist()]
        values[name] = CodedColumn(codes, ordered)
        coded[name] = (codes, ordered)
    cold = _ColdRows(lazy or con, table, _COLD, hot["seq"])
    values.update({name: DuckColumn(cold, name) for name in _COLD})
    return EventColumns(**values, coded=coded)


def _dictionaries(con: DuckDBPyConnection, table: str) -> dict[str, tuple[list[int], list[Any]]]:
    """Each hot column's distinct values of ``table`` and their hashes, from one scan (grouping sets)."""
    names = ", ".join(_HOT)
    picked = ", ".join(f"hash({name}), {name}" for name in _HOT)
    rows = con.execute(
        f"SELECT grouping({names}), {picked} FROM {table} "
        f"GROUP BY GROUPING SETS ({', '.join(f'({name})' for name in _HOT)})"
    ).fetchall()
    found: dict[str, tuple[list[int], list[Any]]] = {name: ([], []) for name in _HOT}
    bits = len(_HOT)
    for grouped, *pairs in rows:
        for n, name in enumerate(_HOT):
            if not (int(grouped) >> (bits - 1 - n)) & 1:  # grouped by this column (its bit is 0)
                found[name][0].append(int(pairs[2 * n]))
                found[name][1].append(pairs[2 * n + 1])
                break
    return found


_Handoff = queue.Queue[Any]


def _put(out: _Handoff, item: object, stop: threading.Event) -> bool:
    """Hand ``item`` on, waiting while the next stage is busy; False once the import is stopping."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


def _get(source: _Handoff, stop: threading.Event) -> Any:
    """The next item from the previous stage; None once the import is stopping."""
    while not stop.is_set():
        try:
            return source.get(timeout=0.2)
        except queue.Empty:
            continue
    return None


def _parse_all(ws: Workspace, source: BatchSource, out: _Handoff, stop: threading.Event) -> None:
    """Stage 1: fill batch tables from ``source``, each renamed ``kg_ready_<n>`` for the store stage."""
    try:
        for n, info in enumerate(source(ws, _TABLE)):
            ready = f"kg_ready_{n}"
            if info.segment is None:
                ws.con.execute(f"ALTER TABLE {_TABLE} RENAME TO {ready}")
            if stop.is_set() or not _put(out, (ready, info), stop):
                return
        _put(out, None, stop)
    except BaseException as exc:  # noqa: BLE001 - handed on to the calling thread, which re-raises it
        _put(out, exc, stop)
    finally:
        ws.con.close()


def _store_all(
    engine: Engine,
    ws: Workspace,
    ready: _Handoff,
    out: _Handoff,
    detect: DuckDBPyConnection | None,
    stop: threading.Event,
    keep: bool,
) -> None:
    """Stage 2: store each ready batch as a segment; hand its new events (a table left for ``detect``) on."""
    try:
        while (item := _get(ready, stop)) is not None:
            if isinstance(item, BaseException):
                raise item
            table, info = item
            with write_tx(engine) as conn:
                stored = store_batch(
                    conn, ws, table, keep=keep, detected=detect is None and not keep, parquet=info.segment
                )
            file = segment_file(ws, stored.segment_id) if keep and stored.segment_id is not None else None
            relation = stored.table if stored.file is None else f"read_parquet('{stored.file}')"
            tally = stored.tally
            if tally is None:
                tally = [
                    (str(k), str(r), int(n))
                    for k, r, n in ws.con.execute(
                        f"SELECT coalesce(key, ''), result, count(*) FROM {relation} GROUP BY ALL"
                    ).fetchall()
                ]
            columns = None
            if detect is not None and stored.fresh:
                kept = f"kg_detect_{table}"
                if stored.file is None:
                    ws.con.execute(f"ALTER TABLE {stored.table} RENAME TO {kept}")
                else:
                    load_parquet(ws, stored.file, kept)
                columns = (kept, fresh_columns(ws.con, kept, detect))
            if stored.file is not None and not keep:
                stored.file.unlink()
            ws.con.execute(f"DROP TABLE IF EXISTS {table}; DROP TABLE IF EXISTS kg_fresh")
            item = _Stored(info, stored.fresh, stored.duplicates, tally, columns, file, stored.segment_id)
            if not _put(out, item, stop):
                return
        _put(out, None, stop)
    except BaseException as exc:  # noqa: BLE001 - handed to the calling thread, which re-raises it
        _put(out, exc, stop)


def run_import(
    engine: Engine,
    source: BatchSource,
    *,
    detector: DetectionEngine | None = None,
    detection: DetectionProcess | None = None,
    on_batch: Callable[[ImportStats], None] | None = None,
) -> ImportStats:
    """Run ``source`` through parsing and storage (two threads) and detection.

    Detection runs in this thread with ``detector``, or in the ``detection`` process
    (which then owns the detector and saves its state).
    """

    stats = ImportStats()
    if detector is not None:  # an import that stopped early left events to detect: those first
        stats.segments, stats.alerts = detect_stored(engine, detector, undetected(engine))
    ready: _Handoff = queue.Queue(maxsize=1)
    results: _Handoff = queue.Queue(maxsize=IN_FLIGHT)
    stop = threading.Event()
    # a detection process takes a core of its own: parsing and storing then run one DuckDB thread each
    with Workspace(threads=1 if detection is not None else 2) as ws:
        lazy = ws.fork().con if detector is not None else None
        stages = [
            threading.Thread(target=_parse_all, args=(ws.fork(), source, ready, stop), name="keyguard-parse"),
            threading.Thread(
                target=_store_all,
                args=(engine, ws, ready, results, lazy, stop, detection is not None),
                name="keyguard-store",
            ),
        ]
        for stage in stages:
            stage.start()
        try:
            while (item := results.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                stats.add(item.info)
                if item.segment_id is not None:
                    stats.segments.append(item.segment_id)
                stats.imported += item.fresh
                stats.duplicates += item.duplicates
                metrics.count_tally(item.tally)
                if detector is not None and lazy is not None and item.columns is not None:
                    table, columns = item.columns
                    stats.alerts += detect_columns(engine, detector, columns)
                    lazy.execute(f"DROP TABLE {table}")
                if detection is not None and item.file is not None and item.segment_id is not None:
                    detection.submit(item.file, item.segment_id)
                if on_batch is not None:
                    on_batch(stats)
            if detection is not None:
                stats.alerts += detection.finish()
        finally:
            stop.set()
            for stage in stages:
                stage.join()
    return stats


def detect_columns(engine: Engine, detector: DetectionEngine, columns: EventColumns) -> int:
    """Run detection over a batch and save what it raises; return how many alerts were created."""
    updates = detector.process_columns(columns)
    return len(save_alerts(engine, updates)) if updates else 0


def detect_stored(engine: Engine, detector: DetectionEngine, segment_ids: list[int]) -> tuple[list[int], int]:
    """Run detection over stored segments, in order; return the ones seen and the alerts raised."""
    seen: list[int] = []
    alerts = 0
    if not segment_ids:
        return seen, alerts
    with Workspace(threads=1) as ws:
        for segment_id in segment_ids:
            if not load_segment(engine, ws, segment_id, "kg_stored"):
                continue
            alerts += detect_columns(engine, detector, fresh_columns(ws.con, "kg_stored"))
            seen.append(segment_id)
    return seen, alerts


def store_events(engine: Engine, events: list[MonitorEvent]) -> list[MonitorEvent]:
    """Store ``events`` now (``watch``); return those new to the store, in order."""
    if not events:
        return []
    with Workspace(threads=1) as ws:
        load_events(ws, _TABLE, events)
        with write_tx(engine) as conn:
            stored = store_batch(conn, ws, _TABLE)
        if not stored.fresh:
            return []
        seqs = ws.con.execute(f"SELECT seq FROM {stored.table} ORDER BY seq").fetchall()
    return [events[int(seq) - 1] for (seq,) in seqs]
