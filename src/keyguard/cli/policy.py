"""``keyguard policy check``: hardening checks; exit 1 when something violates the policy."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from keyguard.cli import context
from keyguard.cli.output import JsonOption, console, emit
from keyguard.policy.engine import gather, load_policy, run_policy

policy_app = typer.Typer(
    help="Hardening policy: rotation, strength, HSM, least privilege, tokens.", no_args_is_help=True
)


@policy_app.command("check")
def check(
    policy: Path | None = typer.Option(None, "--policy", help="A policy file (default: the built-in one)."),
    as_json: bool = JsonOption,
) -> None:
    """Run every check; exit 1 when there are violations."""
    vault = context.vault()
    context.principal(vault).require("key.read")
    violations = run_policy(gather(vault), load_policy(policy))

    def human() -> None:
        if not violations:
            console.print("[green]no policy violations[/green]")
            return
        table = Table("check", "severity", "subject", "finding")
        for v in violations:
            table.add_row(v.check, v.severity, v.subject, v.message)
        console.print(table)

    emit([v.to_dict() for v in violations], as_json, human)
    if violations:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``policy`` to ``app``."""
    app.add_typer(policy_app, name="policy")
