"""``keyguard respond``: the whole playbook for a leaked key, unattended.

This module imports only the vault at start-up: the leaked versions are blocked
before the incident machinery (playbooks, regulations, reports) is even loaded.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.table import Table

from keyguard.cli import context
from keyguard.cli.output import JsonOption, YesOption, confirm, console, emit, err_console, local_time
from keyguard.clock import parse_time
from keyguard.config import Settings
from keyguard.errors import UsageError
from keyguard.vault.refs import parse_ref


def register(app: typer.Typer) -> None:
    """Add ``respond`` to ``app``."""

    @app.command("respond")
    def respond(
        key: list[str] = typer.Option([], "--key", "-k", help="NAME[@VERSION] (repeatable)."),
        resource: str | None = typer.Option(None, "--resource", "-r", help="CONNECTOR/KIND/ID held elsewhere."),
        target: list[Path] = typer.Option([], "--target", help="File or secret:NAME consumers read it from."),
        leaked_stdin: bool = typer.Option(False, "--leaked-stdin", help="Read the leaked value on stdin (--resource)."),
        exposed_at: str | None = typer.Option(None, "--exposed-at", help="RFC 3339 or -2h."),
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
        if resource is not None:
            if key:
                raise UsageError("--key and --resource are exclusive", hint="one playbook per run")
            _respond_resource(resource, target, exposed_at, detected_at, jurisdiction, flag, report_format,
                              yes, as_json, leaked_stdin)
            return
        if not key or exposed_at is None:
            raise UsageError("respond needs --key and --exposed-at (or --resource)", hint="see keyguard respond --help")
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


def _respond_resource(resource: str, targets: list[Path], exposed_at: str | None, detected_at: str | None,
                      jurisdiction: str, flags: list[str], report_format: list[str], yes: bool,
                      as_json: bool, leaked_stdin: bool) -> None:
    """``respond --resource REF``: the playbook through the resource's connector."""
    from keyguard.cli.connector import Opened, read_secret_targets, read_targets, responder, sealed_store
    from keyguard.connectors.refs import parse_ref as parse_resource
    from keyguard.response.resource_respond import respond_resource

    ref = parse_resource(resource)
    exposed = parse_time(exposed_at) if exposed_at else None
    detected = parse_time(detected_at) if detected_at else None
    files, secrets = read_targets(targets), read_secret_targets(targets)
    leaked = context.read_input(None).decode("utf-8", "replace").strip() if leaked_stdin else ""
    if leaked_stdin and not leaked:
        raise UsageError("no leaked value on stdin", hint="pipe it, or drop --leaked-stdin")
    confirm(f"Respond to the leak of {ref}: contain, rotate and retire it now?", yes)
    context.authorize("key.compromise")  # the same right as containing one of keyguard's own keys
    vault = context.vault()
    settings = Settings.from_env()
    show = not as_json and err_console.is_terminal
    with Opened(sealed_store(vault, settings), settings) as opened:
        runner = responder(vault, opened, settings)
        if leaked and not ref.is_external and runner.store is not None:
            from keyguard.connectors.secret import Secret
            from keyguard.response.resource import leaked_field

            runner.store.put(ref.connector, leaked_field(ref), Secret(leaked))
        if show:
            runner.on_step = lambda m: err_console.print(f"[dim]{m}[/dim]")
        result = respond_resource(runner, ref, exposed, detected_at=detected,
                                  jurisdictions=[j for j in jurisdiction.split(",") if j], flags=flags,
                                  targets=files, secret_targets=secrets,
                                  report_dir=settings.home / "reports", report_formats=report_format)
    doc = result.to_dict() | {"resource": str(ref)}

    def human() -> None:
        console.print(f"[bold]incident {result.incident}[/bold] on {ref}: risk {result.grade}, "
                      f"{result.rewrapped} ciphertext(s) re-encrypted")
        table = Table("step", "seconds", "what")
        for s in result.steps:
            what = {k: v for k, v in s.items() if k not in ("step", "seconds", "at", "resource", "assessment")}
            table.add_row(str(s["step"]), str(s["seconds"]), json.dumps(what, default=str)[:200])
        console.print(table)
        for path in result.reports.values():
            console.print(f"report: {path}")
        for item in result.attention:
            console.print(f"[yellow]needs a person:[/yellow] {item}")

    emit(doc, as_json, human)
    if result.overdue:
        raise typer.Exit(1)
