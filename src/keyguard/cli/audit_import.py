"""``keyguard audit import`` and the export of imported events (``audit export --imported``).

The lead's :mod:`keyguard.cli.audit` owns the ``audit`` sub-app; it calls
:func:`register_import` to add ``import`` and uses :func:`export_imported_command`
for ``audit export --imported``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import orjson
import typer
from sqlalchemy import Engine

from keyguard.cli.output import err_console, print_json
from keyguard.clock import parse_time
from keyguard.errors import UsageError
from keyguard.monitor.importers import IMPORTERS, ImportOptions
from keyguard.monitor.ingest import import_target, total_bytes
from keyguard.monitor.store import ImportStats, fingerprint_key, iter_imported
from keyguard.monitor.timeutil import format_ts
from keyguard.runtime import open_engine

MAX_REJECTIONS_SHOWN = 20


def _column_map(items: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in items:
        field, sep, column = item.partition("=")
        if not sep or not field or not column:
            raise UsageError(f"invalid --map {item!r}", hint="use FIELD=COLUMN, e.g. ts=Timestamp")
        mapping[field.strip()] = column.strip()
    return mapping


@contextmanager
def _progress(enabled: bool, total: int | None) -> Iterator[typer.CallbackParam | None]:
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("importing", total=total)
        yield lambda n: progress.advance(task, n)  # type: ignore[misc]


def _report_rejections(stats: ImportStats) -> None:
    for item in stats.rejections[:MAX_REJECTIONS_SHOWN]:
        where = f"{item.source_file}:" if item.source_file else "line "
        sys.stderr.write(f"keyguard: rejected {where}{item.source_line}: {item.reason}\n")
    if stats.rejected > MAX_REJECTIONS_SHOWN:
        sys.stderr.write(f"keyguard: ... and {stats.rejected - MAX_REJECTIONS_SHOWN} more rejected\n")


def import_command(
    target: str = typer.Argument(..., metavar="FILE|-", help="File, folder of files, or - for stdin."),
    fmt: str = typer.Option(..., "--format", "-f", help="jsonl, cloudtrail, vault-audit, csv, combined."),
    column_map: list[str] = typer.Option(
        [],
        "--map",
        help="CSV: FIELD=COLUMN, e.g. ts=Timestamp or key=KeyId (repeatable).",
    ),
    delimiter: str = typer.Option(",", "--delimiter", help="CSV delimiter."),
    credential: str | None = typer.Option(
        None,
        "--credential",
        help="combined: where the credential is (query:NAME, header:NAME, user).",
    ),
    extra_fields: str = typer.Option(
        "",
        "--extra-fields",
        help="combined: names of extra quoted fields after the user agent, comma-separated.",
    ),
    detect: bool = typer.Option(True, "--detect/--no-detect", help="Run detection rules on new events."),
    rules: list[Path] = typer.Option([], "--rules", help="Rule files or folders instead of the built-in ones."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> int:
    """Import events from another log (never stops at a bad line; re-imports add nothing)."""
    if fmt not in IMPORTERS:
        raise UsageError(f"unknown import format {fmt!r}", hint="use " + ", ".join(sorted(IMPORTERS)))
    engine = open_engine()
    options = ImportOptions(
        column_map=_column_map(column_map),
        credential=credential,
        extra_fields=[f.strip() for f in extra_fields.split(",") if f.strip()],
        fingerprint_key=fingerprint_key(engine) if fmt == "combined" else b"",
        delimiter=delimiter,
    )
    show = not as_json and sys.stderr.isatty()
    with _progress(show, total_bytes(target) if show else None) as advance:
        stats = import_target(engine, target, fmt, options, detect=detect, on_read=advance, rules=rules or None)  # type: ignore[arg-type]
    _report_rejections(stats)
    if as_json:
        print_json(stats.to_json())
    else:
        err_console.print(
            f"read {stats.read}, imported {stats.imported}, duplicates {stats.duplicates}, "
            f"rejected {stats.rejected}" + (f"; {stats.alerts} new alerts" if stats.alerts else "")
        )
    return 1 if stats.rejected or stats.alerts else 0  # SPEC §4: done, and something needs attention


def write_imported(
    out: IO[bytes],
    *,
    fmt: str = "jsonl",
    since: str | None = None,
    key: str | None = None,
    engine: Engine | None = None,
) -> int:
    """Write imported events as §5 JSON lines plus ``source``/``source_line``; return the count."""
    if fmt != "jsonl":
        raise UsageError(f"imported events export as jsonl only, not {fmt!r}", hint="use jsonl")
    since_ts = format_ts(parse_time(since)) if since else None
    count = 0
    for record in iter_imported(engine or open_engine(), since=since_ts, key=key):
        record.pop("id", None)
        out.write(orjson.dumps(record) + b"\n")
        count += 1
    out.flush()
    return count


def export_imported(
    *, since: str | None = None, key: str | None = None, out: Path | None = None, fmt: str = "jsonl"
) -> int:
    """What ``audit export --imported`` runs: write to ``out`` (or stdout); return the count."""
    if out is None:
        return write_imported(sys.stdout.buffer, fmt=fmt, since=since, key=key)
    with out.open("wb") as handle:
        return write_imported(handle, fmt=fmt, since=since, key=key)


def register_import(audit_app: typer.Typer) -> None:
    """Add ``import`` to the ``audit`` sub-app (called by :mod:`keyguard.cli.audit`)."""
    audit_app.command("import")(import_command)


__all__ = ["export_imported", "import_command", "register_import", "write_imported"]
