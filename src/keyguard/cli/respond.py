"""``keyguard incident contain|assess|rotate|rollout`` and ``keyguard respond``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from keyguard.cli import context
from keyguard.cli.incident import incident_app, incident_service
from keyguard.cli.output import JsonOption, YesOption, confirm, console, emit, err_console
from keyguard.response import rollout
from keyguard.response.steps import Responder
from keyguard.vault.service import Vault


def _responder() -> tuple[Vault, Responder]:
    vault = context.vault()
    incidents = incident_service(clock=vault.clock)
    install_tripwire(vault, incidents)
    return vault, Responder(vault, incidents, context.principal(vault))


def install_tripwire(vault: Vault, incidents: object) -> None:
    """Record any use of a compromised version as an alert on the incidents covering it."""
    from keyguard.incident.service import IncidentService

    assert isinstance(incidents, IncidentService)

    def hook(principal: object, key: str, version: int, op: str) -> None:
        actor = getattr(principal, "actor", "?")
        for incident in incidents.list(key=key):
            incidents.record(
                incident.id,
                "alert",
                f"tripwire: {actor} attempted {op} with compromised {key} v{version}",
                {"severity": "high", "actor": actor, "op": op, "key": key, "version": version},
            )

    vault.tripwire_hooks.append(hook)


def progress_bar(show: bool) -> Progress:
    """A Rich progress bar on stderr (disabled off a terminal)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        disable=not show,
    )


@incident_app.command("contain")
def contain(
    incident_id: int = typer.Argument(...),
    reversible: bool = typer.Option(False, "--reversible", help="Disable instead of compromise."),
    suspend_clients: bool = typer.Option(
        False,
        "--suspend-clients",
        help="Also suspend the clients that used the key since the exposure.",
    ),
    yes: bool = YesOption,
    as_json: bool = JsonOption,
) -> None:
    """Block the leaked versions everywhere, suspend their users, prove the key is dead."""
    confirm(f"Contain incident {incident_id}: block its key versions now?", yes)
    _vault, responder = _responder()
    evidence = responder.contain(incident_id, reversible, suspend_clients)
    emit(
        evidence,
        as_json,
        lambda: console.print(
            f"contained in {evidence['seconds']} s: "
            + ", ".join(f"{v['key']} v{v['version']} {v['state']}" for v in evidence["versions"])
            + (f"; suspended {', '.join(evidence['suspended'])}" if evidence["suspended"] else "")
            + f"; {len(evidence['proofs'])} refusal(s) recorded as proof"
        ),
    )


@incident_app.command("assess")
def assess(
    incident_id: int = typer.Argument(...),
    baseline_days: int = typer.Option(30, "--baseline-days"),
    as_json: bool = JsonOption,
) -> None:
    """Replay the audit log since the exposure; grade the risk with its reasons."""
    from datetime import timedelta

    _vault, responder = _responder()
    results = responder.assess(incident_id, timedelta(days=baseline_days))

    def human() -> None:
        for a in results:
            console.print(
                f"[bold]{a.key}[/bold] v{a.versions}: risk [bold]{a.grade}[/bold] — "
                f"{a.events_after_exposure:,} events since exposure, {a.anomalies} anomalies"
            )
            for f in a.factors:
                console.print(f"  • {f.en}")

    emit([a.to_dict() for a in results], as_json, human)


@incident_app.command("rotate")
def rotate(
    incident_id: int = typer.Argument(...),
    algorithm: str | None = typer.Option(None, "--algorithm", "-a", help="e.g. ec-p384 instead of rsa-2048."),
    as_json: bool = JsonOption,
) -> None:
    """New key version, then re-wrap every registered item (resumable)."""
    _vault, responder = _responder()
    with progress_bar(not as_json and err_console.is_terminal) as bar:
        task = bar.add_task("re-wrap", total=None)
        evidence = responder.rotate(incident_id, algorithm, lambda d, t: bar.update(task, completed=d, total=t))
    emit(
        evidence,
        as_json,
        lambda: console.print(
            ", ".join(f"{r['key']} → v{r['version']} ({r['algorithm']})" for r in evidence["rotated"])
            + f"; {sum(r['rewrapped'] for r in evidence['rewrap'])} items re-wrapped"
        ),
    )


@incident_app.command("rollout")
def rollout_cmd(
    incident_id: int = typer.Argument(...),
    update: bool = typer.Option(False, "--update", help="Rewrite the consumers' declared key references."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the diff without writing."),
    as_json: bool = JsonOption,
) -> None:
    """Each consumer: switched, straggler or quiet; percentage done."""
    vault, responder = _responder()
    incident = responder.incidents.get(incident_id)
    keys: list[dict[str, Any]] = []
    diffs: list[str] = []
    for ref in incident.keys:
        statuses = rollout.consumers(vault, ref.name)
        active = vault.key_info(ref.name).active
        if update and active is not None:
            for s in statuses:
                for path in s.references:
                    diff = rollout.update_references(Path(path), ref.name, active.version, vault.clock.now(), dry_run)
                    if diff:
                        diffs.append(diff)
                        if not dry_run:
                            vault.record(
                                responder.principal,
                                "rollout.update",
                                "ok",
                                ref.name,
                                active.version,
                                f"{s.client}: {path}",
                            )
        keys.append(
            {
                "key": ref.name,
                "percent": rollout.percent_done(statuses),
                "consumers": [s.to_dict() for s in statuses],
            }
        )
    doc = {"incident": incident_id, "keys": keys, "diffs": diffs}

    def human() -> None:
        for item in keys:
            table = Table(
                "consumer",
                "status",
                "last new",
                "last old",
                "old calls",
                title=f"{item['key']}: {item['percent']}% switched",
            )
            for c in item["consumers"]:
                style = {"switched": "green", "straggler": "red", "quiet": "yellow"}[c["status"]]
                table.add_row(
                    c["client"],
                    f"[{style}]{c['status']}[/{style}]",
                    c["last_new"] or "-",
                    c["last_old"] or "-",
                    str(c["old_calls"]),
                )
            console.print(table)
        for diff in diffs:
            console.print(diff, markup=False, highlight=False)

    emit(doc, as_json, human)
    if any(c["status"] != "switched" for item in keys for c in item["consumers"]):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """The incident step commands are on ``incident_app``; ``respond`` lives in ``respond_cmd``."""
    del app
