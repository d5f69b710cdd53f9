"""``keyguard respond``: the whole playbook for a leaked key, unattended.

This module imports only the vault at start-up: the leaked versions are blocked
before the incident machinery (playbooks, regulations, reports) is even loaded.
"""

from __future__ import annotations

import time

import typer
from rich.table import Table

from keyguard.cli import context
from keyguard.cli.output import JsonOption, YesOption, confirm, console, emit, err_console, local_time
from keyguard.clock import parse_time
from keyguard.config import Settings
from keyguard.vault.refs import parse_ref


def register(app: typer.Typer) -> None:
    """Add ``respond`` to ``app``."""

    @app.command("respond")
    def respond(
        key: list[str] = typer.Option(..., "--key", "-k", help="NAME[@VERSION] (repeatable)."),
        exposed_at: str = typer.Option(..., "--exposed-at", help="RFC 3339 or -2h."),
        detected_at: str | None = typer.Option(None, "--detected-at"),
        jurisdiction: str = typer.Option("", "--jurisdiction", help="eu,cn,us-ca,… (comma separated)."),
        flag: list[str] = typer.Option([], "--flag", help="cii-operator, financial-entity, … (repeatable)."),
        algorithm: str | None = typer.Option(None, "--algorithm", "-a"),
        suspend_clients: bool = typer.Option(
            False, "--suspend-clients", help="Suspend clients that used the key since the exposure."
        ),
        report_format: list[str] = typer.Option(["md", "html"], "--report-format", help="md, html, pdf."),
        yes: bool = YesOption,
        as_json: bool = JsonOption,
    ) -> None:
        """The whole playbook: contain → verify dead → assess → rotate → re-wrap → rollout → obligations → report."""
        started = time.perf_counter()
        confirm(f"Respond to the leak of {', '.join(key)}: compromise, rotate and re-wrap now?", yes)
        refs = [parse_ref(k) for k in key]
        exposed = parse_time(exposed_at)
        detected = parse_time(detected_at) if detected_at else None
        vault = context.vault()
        principal = context.principal(vault)
        from keyguard.response.block import block_versions

        block_versions(vault, principal, refs, reason="respond: containment")
        contained = round(time.perf_counter() - started, 3)

        from keyguard.cli.output import progress_bar
        from keyguard.incident.service import IncidentService
        from keyguard.response.respond import respond as run_respond
        from keyguard.response.tripwire import install_tripwire

        incidents = IncidentService(vault.engine, vault.clock)
        install_tripwire(vault, incidents)
        settings = Settings.from_env()
        show = not as_json and err_console.is_terminal
        with progress_bar(show) as bar:
            task = bar.add_task("re-wrap", total=None)
            result = run_respond(
                vault,
                incidents,
                principal,
                refs,
                exposed,
                detected_at=detected,
                jurisdictions=[j for j in jurisdiction.split(",") if j],
                flags=flag,
                algorithm=algorithm,
                suspend_clients=suspend_clients,
                report_dir=settings.home / "reports",
                report_formats=report_format,
                on_step=(lambda m: err_console.print(f"[dim]{m}[/dim]")) if show else None,
                progress=lambda d, t: bar.update(task, completed=d, total=t),
                contained_seconds=contained,
            )

        def human() -> None:
            incident = incidents.get(result.incident)
            console.print(
                f"[bold]incident {result.incident}[/bold]: contained in {result.contained_seconds} s, "
                f"risk {result.grade}, {result.rewrapped} items re-wrapped, rollout {result.rollout_percent}%"
            )
            table = Table("time", "kind", "what")
            for e in incident.timeline:
                table.add_row(local_time(e.at), e.kind, e.message)
            console.print(table)
            for path in result.reports.values():
                console.print(f"report: {path}")
            for item in result.attention:
                console.print(f"[yellow]needs a person:[/yellow] {item}")

        emit(result.to_dict(), as_json, human)
        if result.overdue:  # the same rule as ``incident show``: a missed deadline
            raise typer.Exit(1)
