"""CSV with a header row; ``--map field=Column`` maps §5 fields to the file's columns."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import IO

from keyguard.audit.chain import FIELDS as CHAIN_FIELDS
from keyguard.monitor.event import RESULTS
from keyguard.monitor.importers.base import ImportOptions, Parsed, Rejected
from keyguard.monitor.importers.jsonl import event_from_record

# The SPEC §5 event fields a CSV column can map to (the chain's own fields excluded).
FIELDS = tuple(f for f in CHAIN_FIELDS if f not in ("id", "prev_hash"))
_RESULT_ALIASES = {
    "success": "ok",
    "succeeded": "ok",
    "allowed": "ok",
    "true": "ok",
    "200": "ok",
    "failure": "error",
    "failed": "error",
    "deny": "denied",
    "forbidden": "denied",
    "unauthorized": "denied",
    "403": "denied",
    "401": "denied",
}


def parse(stream: IO[bytes], *, name: str | None, options: ImportOptions) -> Iterator[Parsed]:
    """Parse CSV rows; a column named like a §5 field maps to it unless ``column_map`` says else."""
    reader = csv.reader(
        io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=""),
        delimiter=options.delimiter,
    )
    try:
        header = next(reader)
    except StopIteration:
        return
    index = {column.strip(): i for i, column in enumerate(header)}
    mapping: dict[str, int] = {}
    for field in FIELDS:
        column = options.column_map.get(field, field)
        if column in index:
            mapping[field] = index[column]
    missing = [f for f in ("ts", "op") if f not in mapping]
    if missing:
        yield Rejected(1, f"no column for {', '.join(missing)} (use --map FIELD=COLUMN)", name)
        return
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Rejected(reader.line_num, f"malformed CSV: {exc}"[:200], name)
            continue
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        record: dict[str, object] = {}
        for field, i in mapping.items():
            record[field] = row[i].strip() if i < len(row) else None
        result = str(record.get("result") or "ok").lower()
        record["result"] = _RESULT_ALIASES.get(result, result) if result not in RESULTS else result
        version = record.get("version")
        if version in ("", None):
            record["version"] = None
        else:
            try:
                record["version"] = int(str(version))
            except ValueError:
                yield Rejected(line, "version must be an integer", name)
                continue
        yield event_from_record(record, source="csv", line=line, name=name)
