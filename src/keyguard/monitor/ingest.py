"""Import a file, a folder of files or stdin into ``imported_events``, with detection."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from sqlalchemy import Engine

from keyguard.errors import NotFoundError
from keyguard.monitor.batches import BatchInfo, BatchSource, ImportStats, python_batches
from keyguard.monitor.detector_state import load_detector, save_detector
from keyguard.monitor.importers import ImportOptions, Parsed, Rejected, get_importer
from keyguard.monitor.importers.base import input_files, open_input
from keyguard.monitor.pipeline import run_import
from keyguard.monitor.segments import Workspace, undetected

#: Inputs from this size on get detection in a process of its own (see keyguard.monitor.detect_process).
DETECT_PROCESS_BYTES = 64 << 20


def total_bytes(target: str) -> int | None:
    """Size of what ``target`` names (for a progress bar), None for stdin."""
    files = input_files(target)
    if files == [None]:
        return None
    return sum(p.stat().st_size for p in files if p is not None)


def parse_target(
    target: str, fmt: str, options: ImportOptions, on_read: Callable[[int], None] | None = None
) -> Iterator[Parsed]:
    """Parse every file of ``target`` (``-`` for stdin) with the importer of ``fmt``."""
    importer = get_importer(fmt)
    for path in _checked_files(target):
        name = None if path is None else str(path)
        read = 0
        try:
            with open_input(path, on_read) as stream:
                for item in importer(stream, name=name, options=options):
                    read += 1
                    yield item
        except (OSError, EOFError, zlib.error, UnicodeError) as exc:
            # A corrupt gzip member or an unreadable file ends that file, not the import.
            yield Rejected(read + 1, f"file unreadable from here: {type(exc).__name__}", name)


def _python_source(parsed: Iterator[Parsed], ws: Workspace, table: str) -> Iterator[BatchInfo]:
    return python_batches(ws, table, parsed)


def _cloudtrail_source(
    target: str, on_read: Callable[[int], None] | None, ws: Workspace, table: str
) -> Iterator[BatchInfo]:
    """CloudTrail through DuckDB, file after file (see :mod:`keyguard.monitor.importers.cloudtrail_sql`)."""
    from keyguard.monitor.importers.cloudtrail_sql import cloudtrail_batches

    for path in _checked_files(target):
        try:
            yield from cloudtrail_batches(ws, table, path, on_read)
        except (OSError, EOFError, zlib.error) as exc:
            yield BatchInfo(1, [Rejected(0, f"file unreadable from here: {type(exc).__name__}", str(path))])


def _checked_files(target: str) -> list[Path | None]:
    files = input_files(target)
    if files != [None] and not files:
        raise NotFoundError(f"no files in {target}")
    for path in files:
        if path is not None and not path.exists():
            raise NotFoundError(f"no such file: {path}", hint="check the path")
    return files


def import_target(
    engine: Engine,
    target: str,
    fmt: str,
    options: ImportOptions | None = None,
    *,
    detect: bool = True,
    on_read: Callable[[int], None] | None = None,
    rules: list[Path] | None = None,
) -> ImportStats:
    """Import ``target`` in format ``fmt``; new events also go through detection.

    ``rules`` replaces the built-in rule catalog with these files or folders.
    """
    if fmt == "cloudtrail":
        source: BatchSource = partial(_cloudtrail_source, target, on_read)
    else:
        parsed = parse_target(target, fmt, options or ImportOptions(), on_read)
        source = partial(_python_source, parsed)
    if detect and (total_bytes(target) or 0) >= DETECT_PROCESS_BYTES:
        from keyguard.monitor.detect_process import DetectionProcess

        # Listed before this import stores anything: what an earlier, interrupted import left.
        detection = DetectionProcess(engine.url.render_as_string(hide_password=False), rules, undetected(engine))
        try:
            return run_import(engine, source, detection=detection)
        finally:
            detection.close()
    detector = load_detector(engine, rules) if detect else None
    stats = run_import(engine, source, detector=detector)
    if detector is not None:
        save_detector(engine, detector, stats.segments)
    return stats


__all__ = ["DETECT_PROCESS_BYTES", "import_target", "load_detector", "parse_target", "total_bytes"]
