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

from keyguard.audit.checkpoint import load_checkpoints, signed_checkpoint, verify_against, write_checkpoint_file
from keyguard.audit.push import load_config, push
from keyguard.audit.reading import iter_events, verify_log
from keyguard.cli import context
from keyguard.cli.output import MAX_COUNT, JsonOption, console, emit, local_time, print_json
from keyguard.clock import parse_time
from keyguard.errors import KeyguardError, UsageError

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
def verify(
    against: list[Path] = typer.Option(  # noqa: B008
        [],
        "--against",
        help="Exported checkpoints (audit checkpoint --out, or a file sink's JSON lines): detects truncation "
        "and rollback. Repeatable.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Walk the hash chain and check the signed head; exit 5 naming the first bad event."""
    vault = context.vault()
    principal = context.principal(vault)
    with vault.audited(principal, "audit.verify", None) as ctx:
        principal.require("audit.read")
        docs = [doc for path in against for doc in load_checkpoints(path)]
        result = verify_log(vault.engine, vault.checkpoint_key)
        if docs:
            result.update(verify_against(vault.engine, vault.checkpoint_key, docs))
        ctx["reason"] = f"{result['events']} events" + (f", against {len(docs)} checkpoints" if docs else "")
    emit(
        result,
        as_json,
        lambda: console.print(
            f"audit chain intact: {result['events']} events, head {result['last_hash'][:16]}…"
            + (" (checkpoint verified)" if result["checkpoint"] else "")
            + (
                f"; holds the exported checkpoint at event {result['against_last_id']}"
                f" (counter {result['against_counter']})"
                if docs
                else ""
            )
        ),
    )


@audit_app.command("checkpoint")
def checkpoint_cmd(
    out: Path | None = typer.Option(None, "--out", help="Write the signed checkpoint here (0600, atomically)."),
    push_now: bool = typer.Option(
        False, "--push", help="Push it to the sinks of [audit.checkpoints] in keyguard.toml."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Export a signed checkpoint of the head, for audit verify --against (keep it off this host)."""
    from keyguard.config import Settings

    vault = context.vault()
    principal = context.principal(vault)
    with vault.audited(principal, "audit.checkpoint", None) as ctx:
        principal.require("audit.read")
        doc = signed_checkpoint(vault.engine, vault.checkpoint_key, vault.clock.now())
        failures: list[str] = []
        if out is not None:
            write_checkpoint_file(out, doc)
        if push_now:
            config = load_config(Settings.from_env().config_file)
            if config is None or not config.sinks:
                raise UsageError(
                    "no checkpoint sinks configured", hint="add [audit.checkpoints] sinks to keyguard.toml"
                )
            failures = push(doc, config.sinks)
        ctx["reason"] = f"checkpoint at event {doc['last_id']} counter {doc['counter']}"
    if failures:
        raise KeyguardError("checkpoint push failed: " + "; ".join(failures), hint="the other sinks received it")
    if out is None and not push_now:
        print_json(doc)
        return
    emit(
        doc,
        as_json,
        lambda: console.print(
            f"checkpoint at event {doc['last_id']} (counter {doc['counter']})" + (f" written to {out}" if out else "")
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
