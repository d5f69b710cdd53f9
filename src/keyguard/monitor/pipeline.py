"""The import pipeline: parse into DuckDB, store segments, detect, on two threads.

A *batch source* fills a DuckDB table with one batch of events at a time
(:data:`keyguard.monitor.segments.BATCH_COLUMNS`) and yields a :class:`BatchInfo`
after each. The storage thread owns the DuckDB workspace: it runs the source,
stores each batch as a segment in its own transaction, and hands the new events
to the calling thread, which runs detection and saves alerts. DuckDB and the
database drivers release the GIL while they work, so parsing and storing batch
*n + 1* overlaps detection of batch *n*; at most :data:`IN_FLIGHT` batches wait,
so memory stays flat.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import Engine

from keyguard.monitor import metrics
from keyguard.monitor.detect.engine import DetectionEngine
from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.importers.base import Parsed, Rejected
from keyguard.monitor.segments import Workspace, load_events, store_batch
from keyguard.store.db import write_tx

BATCH = 65_536
IN_FLIGHT = 2
MAX_REJECTIONS_KEPT = 1000
_TABLE = "kg_batch"


@dataclass
class BatchInfo:
    """One batch put in the batch table: items read (events and rejections) and the rejections."""

    read: int
    rejections: list[Rejected] = field(default_factory=list)


BatchSource = Callable[[Workspace, str], Iterator[BatchInfo]]


@dataclass
class ImportStats:
    """Counts of one import; ``rejections`` keeps the first bad lines (file, line, why)."""

    read: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0
    alerts: int = 0
    rejections: list[Rejected] = field(default_factory=list)

    def to_json(self) -> dict[str, int]:
        """The ``--json`` document of ``audit import`` (SPEC §4)."""
        return {
            "read": self.read,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
        }

    def add(self, info: BatchInfo) -> None:
        """Count a batch's reads and rejections."""
        self.read += info.read
        self.rejected += len(info.rejections)
        room = MAX_REJECTIONS_KEPT - len(self.rejections)
        if room > 0:
            self.rejections.extend(info.rejections[:room])


def python_batches(ws: Workspace, table: str, items: Iterable[Parsed], size: int = BATCH) -> Iterator[BatchInfo]:
    """A batch source over events parsed in Python (every importer has one)."""
    events: list[MonitorEvent] = []
    info = BatchInfo(0)
    for item in items:
        info.read += 1
        if isinstance(item, Rejected):
            info.rejections.append(item)
            continue
        events.append(item)
        if len(events) >= size:
            load_events(ws, table, events)
            yield info
            events, info = [], BatchInfo(0)
    if events or info.read:
        load_events(ws, table, events)
        yield info


@dataclass
class _Stored:
    info: BatchInfo
    fresh: int
    duplicates: int
    tally: list[tuple[str, str, int]]
    events: list[MonitorEvent] | None


_FRESH_COLUMNS = (
    "ts", "op", "result", "key", "version", "actor", "source_ip", "user_agent", "reason", "request_id",
    "source", "source_line", "source_file",
)  # fmt: skip


def fresh_events(ws: Workspace, table: str) -> list[MonitorEvent]:
    """The events of DuckDB table ``table`` (left by :func:`store_batch`), in batch order."""
    rows = ws.con.execute(f"SELECT {', '.join(_FRESH_COLUMNS)} FROM {table} ORDER BY seq").fetchall()  # noqa: S608
    return [MonitorEvent(*row) for row in rows]


def _store_all(
    engine: Engine, source: BatchSource, detect: bool, out: queue.Queue[_Stored | BaseException | None],
    stop: threading.Event,
) -> None:  # fmt: skip
    try:
        with Workspace() as ws:
            for info in source(ws, _TABLE):
                with write_tx(engine) as conn:
                    stored = store_batch(conn, ws, _TABLE)
                tally = [
                    (str(k), str(r), int(n))
                    for k, r, n in ws.con.execute(
                        f"SELECT coalesce(key, ''), result, count(*) FROM {stored.table} GROUP BY ALL"  # noqa: S608
                    ).fetchall()
                ]
                events = fresh_events(ws, stored.table) if detect and stored.fresh else None
                item = _Stored(info, stored.fresh, stored.duplicates, tally, events)
                while not stop.is_set():
                    try:
                        out.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        out.put(None)
    except BaseException as exc:  # noqa: BLE001 - handed to the calling thread, which re-raises it
        out.put(exc)


def run_import(
    engine: Engine,
    source: BatchSource,
    *,
    detector: DetectionEngine | None = None,
    on_batch: Callable[[ImportStats], None] | None = None,
) -> ImportStats:
    """Run ``source`` through storage (a second thread) and detection (this thread); count everything."""
    from keyguard.monitor.store import save_alerts

    stats = ImportStats()
    results: queue.Queue[_Stored | BaseException | None] = queue.Queue(maxsize=IN_FLIGHT)
    stop = threading.Event()
    worker = threading.Thread(
        target=_store_all, args=(engine, source, detector is not None, results, stop), name="keyguard-import"
    )
    worker.start()
    try:
        while (item := results.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            stats.add(item.info)
            stats.imported += item.fresh
            stats.duplicates += item.duplicates
            metrics.count_tally(item.tally)
            if detector is not None and item.events:
                updates = detector.process_many(item.events)
                if updates:
                    stats.alerts += len(save_alerts(engine, updates))
            if on_batch is not None:
                on_batch(stats)
    finally:
        stop.set()
        worker.join()
    return stats


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
        seqs = ws.con.execute(f"SELECT seq FROM {stored.table} ORDER BY seq").fetchall()  # noqa: S608
    return [events[int(seq) - 1] for (seq,) in seqs]
