"""``keyguard incident …``: open, list, show, timeline, task, update, notified, close, notify,
report, and the vault-facing steps contain, assess, rotate and rollout."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from keyguard.cli import context
from keyguard.cli.incident_view import (
    checked_lang,
    countdown,
    exit_if_attention,
    render_incident,
    short_time,
)
from keyguard.cli.output import (
    MAX_COUNT,
    MAX_ID,
    JsonOption,
    YesOption,
    absolute,
    confirm,
    console,
    emit,
    err_console,
    print_json,
    progress_bar,
)
from keyguard.clock import parse_time
from keyguard.config import Settings
from keyguard.errors import UsageError
from keyguard.incident.model import Status
from keyguard.response import rollout
from keyguard.response.steps import Responder
from keyguard.response.tripwire import install_tripwire
from keyguard.vault.refs import parse_ref
from keyguard.vault.service import Vault

incident_app = typer.Typer(
    help="Leaked-key incidents: open, track the SLA and the regulators' clocks, notify, report.",
    no_args_is_help=True,
)
LangOption = typer.Option("en", "--lang", help="en or zh.")


def _responder() -> tuple[Vault, Responder]:
    vault = context.vault()
    incidents = context.incident_service(clock=vault.clock)
    install_tripwire(vault, incidents)
    return vault, Responder(vault, incidents, context.principal(vault))


@incident_app.command("open")
def open_incident(
    key: list[str] = typer.Option([], "--key", "-k", help="Leaked key NAME[@VERSION] (repeatable)."),
    resource: str | None = typer.Option(None, "--resource", "-r", help="CONNECTOR/KIND/ID held elsewhere (SPEC §7)."),
    exposed_at: str = typer.Option(..., "--exposed-at", help="When the key was exposed (RFC 3339 or -2h)."),
    detected_at: str | None = typer.Option(None, "--detected-at", help="When the leak was detected (default now)."),
    source: str = typer.Option("", "--source", help="Where the key leaked (URL, commit, ticket)."),
    jurisdiction: list[str] = typer.Option(
        [], "--jurisdiction", "-j", help="eu, cn, us, us-ca … (repeatable or comma-separated)."
    ),
    data_class: list[str] = typer.Option([], "--data-class", help="pii, payment, credentials, secrets, other."),
    flag: list[str] = typer.Option(
        [], "--flag", help="Facts such as high-risk, cii-operator, relatively-major, nis2-entity."
    ),
    title: str | None = typer.Option(None, "--title", help="Title of the incident."),
    leaked_stdin: bool = typer.Option(False, "--leaked-stdin", help="With --resource: the leaked value on stdin."),
    as_json: bool = JsonOption,
) -> None:
    """Open an incident: the four SLA phases, the playbook tasks and the regulators' deadlines."""
    context.authorize("incident.write")
    if resource is not None or not key:
        from keyguard.cli.connector import open_resource_incident

        open_resource_incident(resource, key, exposed_at, detected_at, source, jurisdiction, flag, as_json,
                               leaked_stdin)
        return
    svc = context.incident_service()
    now = svc.clock.now()
    incident = svc.open(
        [parse_ref(k) for k in key],
        parse_time(exposed_at, svc.clock).replace(microsecond=0),
        parse_time(detected_at, svc.clock).replace(microsecond=0) if detected_at else None,
        source,
        jurisdiction,
        data_class,
        flag,
        title=title,
    )
    emit(incident.to_dict(now), as_json, lambda: render_incident(incident, now))


@incident_app.command("list")
def list_incidents(
    status: str | None = typer.Option(None, "--status", help="Only incidents in this status."),
    key: str | None = typer.Option(None, "--key", help="Only incidents naming this key."),
    as_json: bool = JsonOption,
) -> None:
    """List incidents, newest first."""
    context.authorize("incident.read")
    svc = context.incident_service()
    try:
        wanted = Status(status) if status else None
    except ValueError:
        raise UsageError(f"unknown status {status!r}", hint=", ".join(Status)) from None
    incidents = svc.list(status=wanted, key=key)
    now = svc.clock.now()

    def human() -> None:
        table = Table("id", "title", "keys", "status", "severity", "detected", "attention")
        for inc in incidents:
            attention = len(inc.attention(now))
            table.add_row(
                str(inc.id),
                inc.title,
                ", ".join(str(k) for k in inc.keys),
                str(inc.status),
                str(inc.severity),
                short_time(inc.detected_at),
                f"[bold red]{attention}[/bold red]" if attention else "0",
            )
        console.print(table)

    emit([i.to_dict(now) for i in incidents], as_json, human)


@incident_app.command("show")
def show(
    incident_id: int = typer.Argument(..., metavar="ID", min=1, max=MAX_ID, help="Incident id."),
    lang: str = LangOption,
    as_json: bool = JsonOption,
) -> None:
    """Show phases, tasks and obligations with countdowns; exit 1 when a deadline is missed."""
    context.authorize("incident.read")
    svc = context.incident_service()
    incident = svc.get(incident_id)
    now = svc.clock.now()
    emit(incident.to_dict(now), as_json, lambda: render_incident(incident, now, checked_lang(lang)))
    exit_if_attention(incident, now)


@incident_app.command("timeline")
def timeline(
    incident_id: int = typer.Argument(..., metavar="ID", min=1, max=MAX_ID, help="Incident id."),
    as_json: bool = JsonOption,
) -> None:
    """What was done when, against the SLA."""
    context.authorize("incident.read")
    svc = context.incident_service()
    incident = svc.get(incident_id)

    def human() -> None:
        table = Table("at", "+detection", "kind", "actor", "what")
        for entry in incident.timeline:
            table.add_row(
                short_time(entry.at),
                countdown(entry.at - incident.detected_at).replace(" left", ""),
                entry.kind,
                entry.actor,
                entry.message,
            )
        console.print(table)

    emit([e.to_dict() for e in incident.timeline], as_json, human)


@incident_app.command("task")
def task_done(
    incident_id: int = typer.Argument(..., metavar="ID", min=1, max=MAX_ID, help="Incident id."),
    task_id: str = typer.Argument(..., help="Task id (see incident show)."),
    note: str = typer.Option("", "--note", help="What was done."),
    by: str = typer.Option("operator", "--by", help="Who did it."),
    skip: bool = typer.Option(False, "--skip", help="Close the task as not applicable (needs --reason)."),
    reason: str = typer.Option("", "--reason", help="Why the task does not apply (with --skip)."),
    as_json: bool = JsonOption,
) -> None:
    """Mark a playbook task done with a note, or --skip it as not applicable with a --reason."""
    context.authorize("incident.write")
    svc = context.incident_service()
    if not skip and not note:
        raise UsageError("say what was done", hint="--note TEXT, or --skip --reason TEXT")
    if skip:
        incident = svc.skip_task(incident_id, task_id, reason, by=by)
    else:
        incident = svc.complete_task(incident_id, task_id, note=note, by=by)
    task = incident.task(task_id)
    doc = task.to_dict(svc.clock.now()) if task else {}
    emit(doc, as_json, lambda: console.print(f"task {task_id} of incident {incident_id} done"))


@incident_app.command("update")
def update(
    incident_id: int = typer.Argument(..., metavar="ID", min=1, max=MAX_ID, help="Incident id."),
    severity: str | None = typer.Option(None, "--severity", help="high, medium or low."),
    flag: list[str] = typer.Option([], "--flag", help="Add a fact flag (high-risk, material, …)."),
    jurisdiction: list[str] = typer.Option([], "--jurisdiction", "-j", help="Add a jurisdiction."),
    data_class: list[str] = typer.Option([], "--data-class", help="Add a data class."),
    determination: list[str] = typer.Option(
        [],
        "--determination",
        help="NAME=TIME, e.g. materiality=2026-11-28T10:00:00Z (starts a clock).",
    ),
    records: int | None = typer.Option(None, "--records", min=0, max=MAX_COUNT, help="Records affected."),
    root_cause: str | None = typer.Option(None, "--root-cause", help="The root cause."),
    as_json: bool = JsonOption,
) -> None:
    """Record what is now known; the obligations and their due times follow."""
    context.authorize("incident.write")
    svc = context.incident_service()
    found: dict[str, datetime] = {}
    for item in determination:
        name, sep, when = item.partition("=")
        if not sep or not name:
            raise UsageError(f"invalid determination {item!r}", hint="use NAME=TIME")
        found[name.strip()] = parse_time(when, svc.clock)
    if severity is not None and severity not in ("high", "medium", "low", "unknown"):
        raise UsageError(f"unknown severity {severity!r}", hint="high, medium or low")
    incident = svc.update_facts(
        incident_id,
        severity=severity,
        impact={"records": records} if records is not None else None,
        root_cause=root_cause,
        add_flags=flag,
        add_jurisdictions=jurisdiction,
        add_data_classes=data_class,
        determinations=found,
        actor="operator",
    )
    now = svc.clock.now()
    emit(incident.to_dict(now), as_json, lambda: render_incident(incident, now))


@incident_app.command("notified")
def notified(
    incident_id: int = typer.Argument(..., metavar="ID", min=1, max=MAX_ID, help="Incident id."),
    regulation: str = typer.Option(..., "--regulation", "-r", help="Regulation id, e.g. gdpr-art33."),
    reference: str = typer.Option("", "--reference", help="The authority's case number or a link."),
    not_applicable: str | None = typer.Option(
        None, "--not-applicable", help="Close the duty as not applicable, with the reason."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Record that a required notice was submitted (or, with --not-applicable, why none is due)."""
    context.authorize("incident.write")
    svc = context.incident_service()
    if not_applicable is not None:
        incident = svc.waive_obligation(incident_id, regulation, not_applicable, by="operator")
    else:
        incident = svc.complete_obligation(incident_id, regulation, reference, by="operator")
    ob = next(o for o in incident.obligations if o.regulation == regulation)
    emit(
        ob.to_dict(svc.clock.now()),
        as_json,
        lambda: console.print(f"{regulation}: notice recorded"),
    )


@incident_app.command("close")
def close(
    incident_id: int = typer.Argument(..., metavar="ID", min=1, max=MAX_ID, help="Incident id."),
    root_cause: str | None = typer.Option(None, "--root-cause", help="The root cause."),
    note: str = typer.Option("", "--note", help="Closing note."),
    force: bool = typer.Option(False, "--force", help="Close before recovery (e.g. a false positive)."),
    as_json: bool = JsonOption,
) -> None:
    """Close the incident (status must be recovered unless --force)."""
    context.authorize("incident.write")
    svc = context.incident_service()
    incident = svc.close(incident_id, root_cause, note, actor="operator", force=force)
    emit(
        incident.to_dict(svc.clock.now()),
        as_json,
        lambda: console.print(f"incident {incident_id} closed"),
    )


@incident_app.command("notify")
def notify(
    incident_id: int = typer.Argument(..., metavar="ID", min=1, max=MAX_ID, help="Incident id."),
    regulation: str = typer.Option(..., "--regulation", "-r", help="Regulation id, e.g. gdpr-art33."),
    lang: str = LangOption,
    contact: str = typer.Option("", "--contact", help="Contact point (DPO name, e-mail, phone)."),
    organisation: str = typer.Option("", "--org", help="Name of the organisation."),
    out: Path | None = typer.Option(None, "--out", help="Write the draft to FILE instead of stdout."),
    as_json: bool = JsonOption,
) -> None:
    """Draft the notice a regulation requires, filled from the incident (Markdown)."""
    context.authorize("incident.read")
    from keyguard.incident.notify import draft_notice

    svc = context.incident_service()
    incident = svc.get(incident_id)
    text = draft_notice(
        incident,
        svc.catalog.get(regulation),
        checked_lang(lang),
        now=svc.clock.now(),
        contact=contact,
        organisation=organisation,
    )
    if out is not None:
        _write(out, text.encode("utf-8"))
    if as_json:
        print_json(
            {
                "incident": incident_id,
                "regulation": regulation,
                "lang": lang,
                "text": text,
                "out": absolute(out) if out else None,
            }
        )
    elif out is None:
        console.out(text, highlight=False)
    else:
        console.print(f"notice draft written to {out}")


@incident_app.command("report")
def report(
    incident_id: int = typer.Argument(..., metavar="ID", min=1, max=MAX_ID, help="Incident id."),
    fmt: str = typer.Option("md", "--format", help="md, html or pdf."),
    lang: str = LangOption,
    out: Path | None = typer.Option(None, "--out", help="Output file (required for pdf)."),
    organisation: str = typer.Option("", "--org", help="Name of the organisation."),
    as_json: bool = JsonOption,
) -> None:
    """Write the incident report: summary, timeline vs SLA, impact, usage chart, actions."""
    context.authorize("incident.read")
    from keyguard.incident.report import render_report
    from keyguard.incident.report.sources import gather_report_data

    if fmt not in ("md", "html", "pdf"):
        raise UsageError(f"unknown format {fmt!r}", hint="md, html or pdf")
    if fmt == "pdf" and out is None:
        raise UsageError("a PDF report needs --out FILE")
    svc = context.incident_service()
    data = gather_report_data(svc, incident_id, organisation)
    body = render_report(data, fmt, checked_lang(lang))
    if out is None:
        console.out(body.decode("utf-8"), highlight=False)
        return
    _write(out, body)
    doc = {
        "incident": incident_id,
        "format": fmt,
        "lang": lang,
        "out": absolute(out),
        "bytes": len(body),
    }
    emit(doc, as_json, lambda: console.print(f"report written to {out} ({len(body)} bytes)"))


@incident_app.command("contain")
def contain(
    incident_id: int | None = typer.Argument(None, metavar="ID", min=1, max=MAX_ID),
    resource: str | None = typer.Option(None, "--resource", "-r", help="CONNECTOR/KIND/ID held elsewhere (SPEC §7)."),
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
    incident_id = _resource_step("contain", incident_id, resource, yes=yes, as_json=as_json)
    if incident_id is None:
        return
    context.authorize("key.compromise")
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
    incident_id: int | None = typer.Argument(None, metavar="ID", min=1, max=MAX_ID),
    resource: str | None = typer.Option(None, "--resource", "-r", help="CONNECTOR/KIND/ID held elsewhere (SPEC §7)."),
    baseline_days: int = typer.Option(30, "--baseline-days", min=1, max=3650),
    as_json: bool = JsonOption,
) -> None:
    """Replay the audit log since the exposure; grade the risk with its reasons."""
    incident_id = _resource_step("assess", incident_id, resource, as_json=as_json)
    if incident_id is None:
        return
    context.authorize("incident.write")
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
    incident_id: int | None = typer.Argument(None, metavar="ID", min=1, max=MAX_ID),
    resource: str | None = typer.Option(None, "--resource", "-r", help="CONNECTOR/KIND/ID held elsewhere (SPEC §7)."),
    algorithm: str | None = typer.Option(None, "--algorithm", "-a", help="e.g. ec-p384 instead of rsa-2048."),
    as_json: bool = JsonOption,
) -> None:
    """New key version, then re-wrap every registered item (resumable)."""
    incident_id = _resource_step("rotate", incident_id, resource, as_json=as_json)
    if incident_id is None:
        return
    context.authorize("key.rotate")
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
    incident_id: int | None = typer.Argument(None, metavar="ID", min=1, max=MAX_ID),
    resource: str | None = typer.Option(None, "--resource", "-r", help="CONNECTOR/KIND/ID held elsewhere (SPEC §7)."),
    update: bool = typer.Option(False, "--update", help="Rewrite the consumers' declared key references."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the diff without writing."),
    target: list[Path] = typer.Option(
        [], "--target", help="File, or secret:NAME, where consumers read the credential (--resource)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Each consumer: switched, straggler or quiet; percentage done."""
    incident_id = _resource_step("rollout", incident_id, resource, targets=target, as_json=as_json)
    if incident_id is None:
        return
    context.authorize("incident.write")
    vault, responder = _responder()
    incident = responder.incidents.get(incident_id)
    policy = rollout.RolloutPolicy.load(Settings.from_env().config_file)
    keys: list[dict[str, Any]] = []
    diffs: list[str] = []
    for ref in incident.keys:
        statuses = rollout.consumers(vault, ref.name)
        active = vault.key_info(ref.name).active
        if update and active is not None:
            for s in statuses:
                for path in s.references:
                    diff = rollout.update_target(
                        vault,
                        responder.principal,
                        path,
                        ref.name,
                        active.version,
                        vault.clock.now(),
                        dry_run,
                        policy=policy,
                    )
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


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def register(app: typer.Typer) -> None:
    """Add ``incident`` to ``app``."""
    app.add_typer(incident_app, name="incident")


def _resource_step(step: str, incident_id: int | None, resource: str | None, *, yes: bool = True,
                   targets: list[Path] | None = None, as_json: bool = False) -> int | None:
    """Run ``step`` through the connector when ``--resource`` is given or the incident is on one (then None)."""
    from keyguard.cli.connector import incident_on_resource, run_resource_step

    if resource is None and incident_id is None:
        raise UsageError("missing argument ID", hint="name the incident, or pass --resource REF")
    if resource is None and incident_id is not None and not incident_on_resource(incident_id):
        return incident_id
    run_resource_step(step, incident_id, resource, yes=yes, targets=targets or [], as_json=as_json)
    return None
