"""keyguard's own event shape (SPEC §5), one JSON object per line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import orjson

from keyguard.monitor.event import RESULTS, MonitorEvent
from keyguard.monitor.importers.base import ImportOptions, Parsed, Rejected, iter_lines, text
from keyguard.monitor.timeutil import TimeFormatError, normalize_ts


def event_from_record(record: Any, *, source: str, line: int, name: str | None) -> Parsed:
    """Map one §5 record to an event, or a rejection saying what is wrong."""
    if not isinstance(record, dict):
        return Rejected(line, "not a JSON object", name)
    ts, op, result = record.get("ts"), record.get("op"), record.get("result")
    if not isinstance(ts, str) or not isinstance(op, str) or not op:
        return Rejected(line, "missing ts or op", name)
    if result not in RESULTS:
        return Rejected(line, "result must be ok, denied or error", name)
    version = record.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        return Rejected(line, "version must be an integer", name)
    try:
        norm = normalize_ts(ts)
    except TimeFormatError as exc:
        return Rejected(line, str(exc), name)
    natural = record.get("hash")
    return MonitorEvent(
        ts=norm,
        op=op[:64],
        result=result,
        key=text(record.get("key"), 256),
        version=version,
        actor=str(record.get("actor") or "")[:256],
        source_ip=text(record.get("source_ip"), 64),
        user_agent=text(record.get("user_agent"), 512),
        reason=text(record.get("reason"), 4000),
        request_id=text(record.get("request_id"), 128),
        source=source,
        source_line=line,
        source_file=name,
        natural_id=natural if isinstance(natural, str) else None,
    )


def parse(stream: IO[bytes], *, name: str | None, options: ImportOptions) -> Iterator[Parsed]:
    """Parse §5 JSON lines."""
    del options
    for number, line in iter_lines(stream):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield Rejected(number, "invalid JSON", name)
            continue
        yield event_from_record(record, source="jsonl", line=number, name=name)
