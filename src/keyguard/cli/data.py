"""``keyguard data …``: register what keys protect, list it, move it to the active version."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from keyguard.cli import context
from keyguard.cli.output import MAX_BATCH, MAX_COUNT, MAX_VERSION, JsonOption, console, emit, err_console
from keyguard.crypto.envelope import parse_context
from keyguard.data.inventory import DataInventory

data_app = typer.Typer(help="The data inventory: what each key version protects.", no_args_is_help=True)


@data_app.command("register")
def register_item(
    name: str = typer.Argument(..., help="Item name (a table, bucket, file …)."),
    data_class: str = typer.Option(..., "--class", help="pii, payment, credentials, secrets or other."),
    records: int = typer.Option(..., "--records", min=0, max=MAX_COUNT, help="How many records it holds."),
    context_json: str | None = typer.Option(None, "--context", "-c", help="Encryption context (JSON)."),
    as_json: bool = JsonOption,
) -> None:
    """Read a ciphertext (or wrapped data key) on stdin and record what it protects."""
    vault = context.vault()
    text = context.read_input(None).decode("ascii", "replace").strip()
    doc = DataInventory(vault).register(
        context.principal(vault), name, data_class, records, text, parse_context(context_json)
    )
    emit(
        doc,
        as_json,
        lambda: console.print(f"registered {name}: {doc['key']} v{doc['version']}, {records} {data_class} records"),
    )


@data_app.command("list")
def list_items(
    key: str | None = typer.Option(None, "--key", "-k"),
    version: int | None = typer.Option(None, "--version", "-v", min=1, max=MAX_VERSION),
    as_json: bool = JsonOption,
) -> None:
    """List registered items with their key and version."""
    vault = context.vault()
    items = DataInventory(vault).items(context.principal(vault), key, version)

    def human() -> None:
        table = Table("name", "class", "records", "key", "version")
        for item in items:
            table.add_row(item["name"], item["class"], str(item["records"]), item["key"], str(item["version"]))
        console.print(table)

    emit(items, as_json, human)


@data_app.command("rewrap")
def rewrap(
    key: str = typer.Option(..., "--key", "-k"),
    batch: int = typer.Option(2000, "--batch", min=1, max=MAX_BATCH, help="Items per transaction."),
    as_json: bool = JsonOption,
) -> None:
    """Move every registered item of a key to its active version (idempotent, resumable)."""
    vault = context.vault()
    inventory = DataInventory(vault)
    show = not as_json and err_console.is_terminal
    with Progress(
        TextColumn("rewrap {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not show,
    ) as progress:
        task = progress.add_task(key, total=None)
        report = inventory.rewrap(
            context.principal(vault),
            key,
            batch,
            lambda done, total: progress.update(task, completed=done, total=total),
        )
    emit(
        report.to_dict(),
        as_json,
        lambda: console.print(
            f"{report.rewrapped} items moved to {key} v{report.to_version}; {report.remaining} remaining"
            + (f"; {report.unrecoverable} under destroyed versions" if report.unrecoverable else "")
        ),
    )


def register(app: typer.Typer) -> None:
    """Add ``data`` to ``app``."""
    app.add_typer(data_app, name="data")
