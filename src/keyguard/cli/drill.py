"""``keyguard drill run``: rehearse the response on a canary key and score it against the targets."""

from __future__ import annotations

import typer
from rich.table import Table

from keyguard.cli import context
from keyguard.cli.context import incident_service
from keyguard.cli.output import JsonOption, console, emit
from keyguard.response.drill import run_drill

drill_app = typer.Typer(help="Drills: rehearse the leaked-key playbook.", no_args_is_help=True)


@drill_app.command("run")
def run(
    items: int = typer.Option(1000, "--items", min=0, max=1_000_000, help="Registered items under the canary."),
    as_json: bool = JsonOption,
) -> None:
    """Leak a canary key on paper, respond, score each step; exit 1 if a target is missed."""
    vault = context.vault()
    result = run_drill(vault, incident_service(clock=vault.clock), context.principal(vault), items)

    def human() -> None:
        table = Table("check", "seconds", "result", title=f"drill on {result.key} (incident {result.incident})")
        for c in result.checks:
            table.add_row(
                c["check"],
                f"{c['seconds']:.3f}" if "seconds" in c else "-",
                "[green]pass[/green]" if c["passed"] else "[red]FAIL[/red]",
            )
        console.print(table)

    emit(result.to_dict(), as_json, human)
    if not result.passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``drill`` to ``app``."""
    app.add_typer(drill_app, name="drill")
