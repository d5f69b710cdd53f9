"""What ``watch`` follows: keyguard's audit table (id cursor) and growing files (tail -F)."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, select

from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.importers import ImportOptions, Rejected, get_importer
from keyguard.store.tables import AuditEvent

_AUDIT: Table = AuditEvent.__table__  # type: ignore[assignment]
MAX_READ = 8 << 20


def audit_row_event(row: Any) -> MonitorEvent:
    """A row of keyguard's own ``audit_events`` as a monitor event (``source_line`` = id)."""
    return MonitorEvent(
        ts=row.ts,
        op=row.op,
        result=row.result,
        key=row.key,
        version=row.version,
        actor=row.actor or "",
        source_ip=row.source_ip,
        user_agent=row.user_agent,
        reason=row.reason,
        request_id=row.request_id,
        source="keyguard",
        source_line=int(row.id),
        natural_id=row.hash,
    )


class AuditFollower:
    """Reads ``audit_events`` with ``id > cursor`` in id order."""

    def __init__(self, engine: Engine, cursor: int = 0, batch: int = 5000) -> None:
        self.engine = engine
        self.cursor = cursor
        self.batch = batch

    def read(self) -> tuple[list[MonitorEvent], int]:
        """New events and the cursor after them (not yet committed by the caller)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(_AUDIT).where(_AUDIT.c.id > self.cursor).order_by(_AUDIT.c.id).limit(self.batch)
            ).all()
        events = [audit_row_event(r) for r in rows]
        return events, (int(rows[-1].id) if rows else self.cursor)


@dataclass
class FileCursor:
    """Where a followed file was read up to: inode, byte offset, line number."""

    inode: int = 0
    offset: int = 0
    line: int = 0

    def to_json(self) -> dict[str, int]:
        """JSON-able form."""
        return {"inode": self.inode, "offset": self.offset, "line": self.line}


class FileFollower:
    """Follows a growing file like ``tail -F``: survives rotation and truncation.

    Only complete lines are read; a partial last line waits for its newline.
    """

    def __init__(self, path: Path, fmt: str, options: ImportOptions, cursor: FileCursor) -> None:
        self.path = path
        self.fmt = fmt
        self.options = replace(options, is_tail=True)
        self.cursor = cursor
        self._importer = get_importer(fmt)
        self.rejected = 0

    @property
    def state_name(self) -> str:
        """The name of this follower's cursor in ``monitor_state``."""
        return f"file:{self.fmt}:{self.path.resolve()}"

    def read(self) -> tuple[list[MonitorEvent], FileCursor]:
        """New complete lines parsed into events, and the cursor after them."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return [], self.cursor
        cursor = FileCursor(self.cursor.inode, self.cursor.offset, self.cursor.line)
        if stat.st_ino != cursor.inode or stat.st_size < cursor.offset:
            cursor = FileCursor(stat.st_ino, 0, 0)  # rotated or truncated: start over
        if stat.st_size == cursor.offset:
            return [], cursor
        with open(self.path, "rb") as handle:
            handle.seek(cursor.offset)
            data = handle.read(min(stat.st_size - cursor.offset, MAX_READ))
        end = data.rfind(b"\n")
        if end < 0:
            return [], cursor
        chunk = data[: end + 1]
        stream = io.BufferedReader(io.BytesIO(chunk))
        events: list[MonitorEvent] = []
        for item in self._importer(stream, name=str(self.path), options=self.options):
            if isinstance(item, Rejected):
                self.rejected += 1
                continue
            item.source_line += cursor.line
            events.append(item)
        lines = chunk.count(b"\n")
        return events, FileCursor(cursor.inode, cursor.offset + len(chunk), cursor.line + lines)
