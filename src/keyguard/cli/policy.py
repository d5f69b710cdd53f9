"""``keyguard policy check``: hardening checks; exit 1 when something violates the policy."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from keyguard.cli import context
from keyguard.cli.output import JsonOption, console, emit, local_time
from keyguard.policy.engine import gather, load_policy, run_policy
from keyguard.policy.schedule import next_rotations

policy_app = typer.Typer(
    help="Hardening policy: rotation, strength, HSM, least privilege, tokens.", no_args_is_help=True
)


@policy_app.command("check")
def check(
    policy: Path | None = typer.Option(None, "--policy", help="A policy file (default: the built-in one)."),
    as_json: bool = JsonOption,
) -> None:
    """Run every check and show each key's next due rotation; exit 1 when there are violations."""
    vault = context.vault()
    context.principal(vault).require("key.read")
    violations = run_policy(gather(vault), load_policy(policy))
    rotations = next_rotations(vault.engine, vault.clock.now())

    def human() -> None:
        if not violations:
            console.print("[green]no policy violations[/green]")
        else:
            table = Table("check", "severity", "subject", "finding")
            for v in violations:
                table.add_row(v.check, v.severity, v.subject, v.message)
            console.print(table)
        if rotations:
            due = Table("key", "period", "last rotated", "next due rotation", "last scheduled run")
            for r in rotations:
                last = r["last_scheduled"]
                due.add_row(r["key"], f"{r['rotation_days']}d", local_time(r["rotated_at"]),
                            local_time(r["next_due"]) + (" (overdue)" if r["overdue"] else ""),
                            "-" if last is None else f"{last['status']} {local_time(last['at'])}"
                            + (f": {last['error']}" if last["error"] else ""))
            console.print(due)

    emit({"violations": [v.to_dict() for v in violations], "rotations": rotations}, as_json, human)
    if violations:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``policy`` to ``app``."""
    app.add_typer(policy_app, name="policy")
