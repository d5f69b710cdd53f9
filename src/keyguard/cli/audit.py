"""``keyguard audit …``: tail, verify and export the tamper-evident log."""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from keyguard.audit.log import iter_events, verify_log
from keyguard.cli import context
from keyguard.cli.output import MAX_COUNT, JsonOption, console, emit, local_time, print_json
from keyguard.clock import parse_time
from keyguard.errors import UsageError

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


def _filtered(since: str | None, key: str | None) -> Any:
    vault = context.vault()
    context.principal(vault).require("audit.read")
    since_ts = None
    if since:
        from keyguard.audit.log import format_ts

        since_ts = format_ts(parse_time(since))
    for event in iter_events(vault.engine):
        if since_ts and event["ts"] < since_ts:
            continue
        if key and event["key"] != key:
            continue
        yield event


@audit_app.command("tail")
def tail(
    lines: int = typer.Option(20, "-n", "--lines", min=0, max=MAX_COUNT, help="How many of the newest events."),
    key: str | None = typer.Option(None, "--key", "-k"),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new events."),
    as_json: bool = JsonOption,
) -> None:
    """Show the newest events."""
    vault = context.vault()
    context.principal(vault).require("audit.read")
    from collections import deque

    recent: deque[dict[str, Any]] = deque(maxlen=lines)
    for event in iter_events(vault.engine):
        if key is None or event["key"] == key:
            recent.append(event)
    if as_json and not follow:
        print_json(list(recent))
        return
    table = Table("id", "ts", "actor", "op", "key", "v", "result", "reason")
    for e in recent:
        table.add_row(
            str(e["id"]),
            local_time(e["ts"]),
            e["actor"],
            e["op"],
            e["key"] or "-",
            str(e["version"] or "-"),
            e["result"],
            e["reason"] or "",
        )
    if not as_json:
        console.print(table)
    last = recent[-1]["id"] if recent else 0
    while follow:
        time.sleep(0.5)
        for event in iter_events(vault.engine, since_id=last):
            last = event["id"]
            if key is None or event["key"] == key:
                sys.stdout.write(json.dumps(event) + "\n")
                sys.stdout.flush()


@audit_app.command("verify")
def verify(as_json: bool = JsonOption) -> None:
    """Walk the hash chain; exit 5 naming the first bad event."""
    vault = context.vault()
    context.principal(vault).require("audit.read")
    result = verify_log(vault.engine, vault.checkpoint_key)
    emit(
        result,
        as_json,
        lambda: console.print(
            f"audit chain intact: {result['events']} events, head {result['last_hash'][:16]}…"
            + (" (checkpoint verified)" if result["checkpoint"] else "")
        ),
    )


@audit_app.command("export")
def export(
    fmt: str = typer.Option("jsonl", "--format", help="jsonl"),
    since: str | None = typer.Option(None, "--since", help="RFC 3339 or -2h."),
    key: str | None = typer.Option(None, "--key", "-k"),
    imported: bool = typer.Option(False, "--imported", help="Export imported events instead."),
    out: Path | None = typer.Option(None, "--out"),
) -> None:
    """Write events as JSON lines (SPEC §5)."""
    if fmt != "jsonl":
        raise UsageError(f"unknown format {fmt!r}", hint="jsonl")
    if imported:
        try:
            module = importlib.import_module("keyguard.cli.audit_import")
        except ModuleNotFoundError:
            raise UsageError("imported events are not available in this build") from None
        module.export_imported(since=since, key=key, out=out)
        return
    handle = open(out, "w", encoding="utf-8") if out else sys.stdout  # noqa: SIM115
    try:
        for event in _filtered(since, key):
            handle.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
    finally:
        if out:
            handle.close()


def register(app: typer.Typer) -> None:
    """Add ``audit`` to ``app`` (with ``import`` when the monitor is built)."""
    try:
        module = importlib.import_module("keyguard.cli.audit_import")
    except ModuleNotFoundError:
        module = None
    if module is not None and hasattr(module, "register_import"):
        module.register_import(audit_app)
    app.add_typer(audit_app, name="audit")
