"""Batches of an import: what a batch source yields, and the counts of a whole import.

A *batch source* fills a DuckDB table with one batch of events at a time
(:data:`keyguard.monitor.segments.BATCH_COLUMNS`) and yields a :class:`BatchInfo`
after each; :mod:`keyguard.monitor.pipeline` stores and detects them. Importers
that parse in Python (and the DuckDB CloudTrail path, where it falls back) turn
their events into batches with :func:`python_batches`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.importers.base import Parsed, Rejected
from keyguard.monitor.segments import Workspace, load_events

BATCH = 65_536
MAX_REJECTIONS_KEPT = 1000


@dataclass
class BatchInfo:
    """One batch put in the batch table: items read (events and rejections) and the rejections.

    A source may instead hand the batch as a segment's Parquet file (``segment``, see
    :func:`keyguard.monitor.segments.copy_segment`), and then leaves no batch table.
    """

    read: int
    rejections: list[Rejected] = field(default_factory=list)
    segment: Path | None = None


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
    segments: list[int] = field(default_factory=list, repr=False)  # stored or caught up, for detection's record

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
