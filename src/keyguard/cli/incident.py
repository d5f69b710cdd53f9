"""``keyguard incident …``: open, list, show, timeline, task, update, notified, close, notify,
report.

The vault-facing steps (``contain``, ``assess``, ``rotate``, ``rollout``) and the
top-level ``respond`` are added to :data:`incident_app` / ``app`` by the vault
code: use :func:`incident_service` and :func:`parse_key` from here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import typer
from rich.table import Table

from keyguard.cli.output import JsonOption, console, emit, print_json
from keyguard.cli.respond_cmd import parse_ref as parse_key
from keyguard.clock import Clock, SystemClock, format_time, parse_time
from keyguard.config import Settings
from keyguard.errors import UsageError
from keyguard.incident.model import Incident, ItemState, Status
from keyguard.incident.service import IncidentService
from keyguard.runtime import open_engine

incident_app = typer.Typer(
    help="Leaked-key incidents: open, track the SLA and the regulators' clocks, notify, report.",
    no_args_is_help=True,
)

_STYLE = {ItemState.DONE: "green", ItemState.OVERDUE: "bold red", ItemState.PENDING: "yellow"}
LangOption = typer.Option("en", "--lang", help="en or zh.")


def incident_service(settings: Settings | None = None, clock: Clock | None = None) -> IncidentService:
    """The incident service of ``$KEYGUARD_HOME`` / ``KEYGUARD_DATABASE_URL``."""
    return IncidentService(open_engine(settings), clock or SystemClock())


def _lang(lang: str) -> str:
    if lang not in ("en", "zh"):
        raise UsageError(f"unknown language {lang!r}", hint="en or zh")
    return lang


def _countdown(left: timedelta | None) -> str:
    if left is None:
        return "-"
    sign = left.total_seconds() < 0
    seconds = abs(int(left.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    text = f"{days}d {hours}h {minutes:02d}m" if days else f"{hours}h {minutes:02d}m"
    return text + (" overdue" if sign else " left")


def _styled(state: ItemState) -> str:
    return f"[{_STYLE[state]}]{state}[/{_STYLE[state]}]"


def _short(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M") if at is not None else "-"


def _render(incident: Incident, now: datetime, lang: str = "en") -> None:
    console.print(
        f"[bold]incident {incident.id}[/bold]  {incident.title}\n"
        f"status={incident.status} severity={incident.severity} "
        f"keys={', '.join(str(k) for k in incident.keys)}\n"
        f"exposed {format_time(incident.exposed_at)}  detected {format_time(incident.detected_at)}"
        + (f"\nsource: {incident.source}" if incident.source else "")
    )
    for phase in incident.phases:
        title = f"{phase.title.get(lang)} — due {_short(phase.due_at)} UTC ({phase.state(now)})"
        table = Table(title=title, title_justify="left", expand=False)
        table.add_column("task", overflow="fold")
        table.add_column("due (UTC)", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("done", overflow="fold")
        for task in phase.tasks:
            done = f"{_short(task.done_at)} {task.done_by}" if task.done_at else "-"
            table.add_row(
                f"[bold]{task.id}[/bold] [dim]({task.owner})[/dim]\n{task.title.get(lang)}",
                _short(task.due_at),
                _styled(task.state(now)),
                done,
            )
        console.print(table)
    if incident.obligations:
        table = Table(title="obligations", title_justify="left")
        table.add_column("regulation", overflow="fold")
        table.add_column("due (UTC)", overflow="fold")
        table.add_column("countdown", no_wrap=True)
        table.add_column("status", no_wrap=True)
        for ob in incident.obligations:
            table.add_row(
                f"[bold]{ob.regulation}[/bold]\n[dim]{ob.audience.get(lang)}[/dim]",
                _short(ob.due_at) if ob.due_at else ob.deadline.get(lang),
                _countdown(ob.countdown(now)),
                _styled(ob.state(now)),
            )
        console.print(table)
    else:
        console.print("no notification duties for these facts (jurisdictions, data classes, flags)")
    for item in incident.attention(now):
        console.print(f"[bold red]needs attention:[/bold red] {item}")


def _exit_if_attention(incident: Incident, now: datetime) -> None:
    if incident.attention(now):
        raise typer.Exit(code=1)


@incident_app.command("open")
def open_incident(
    key: list[str] = typer.Option(..., "--key", "-k", help="Leaked key NAME[@VERSION] (repeatable)."),
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
    as_json: bool = JsonOption,
) -> None:
    """Open an incident: the four SLA phases, the playbook tasks and the regulators' deadlines."""
    svc = incident_service()
    now = svc.clock.now()
    incident = svc.open(
        [parse_key(k) for k in key],
        parse_time(exposed_at, svc.clock).replace(microsecond=0),
        parse_time(detected_at, svc.clock).replace(microsecond=0) if detected_at else None,
        source,
        jurisdiction,
        data_class,
        flag,
        title=title,
    )
    emit(incident.to_dict(now), as_json, lambda: _render(incident, now))


@incident_app.command("list")
def list_incidents(
    status: str | None = typer.Option(None, "--status", help="Only incidents in this status."),
    key: str | None = typer.Option(None, "--key", help="Only incidents naming this key."),
    as_json: bool = JsonOption,
) -> None:
    """List incidents, newest first."""
    svc = incident_service()
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
                _short(inc.detected_at),
                f"[bold red]{attention}[/bold red]" if attention else "0",
            )
        console.print(table)

    emit([i.to_dict(now) for i in incidents], as_json, human)


@incident_app.command("show")
def show(
    incident_id: int = typer.Argument(..., help="Incident id."),
    lang: str = LangOption,
    as_json: bool = JsonOption,
) -> None:
    """Show phases, tasks and obligations with countdowns; exit 1 when a deadline is missed."""
    svc = incident_service()
    incident = svc.get(incident_id)
    now = svc.clock.now()
    emit(incident.to_dict(now), as_json, lambda: _render(incident, now, _lang(lang)))
    _exit_if_attention(incident, now)


@incident_app.command("timeline")
def timeline(
    incident_id: int = typer.Argument(..., help="Incident id."),
    as_json: bool = JsonOption,
) -> None:
    """What was done when, against the SLA."""
    svc = incident_service()
    incident = svc.get(incident_id)

    def human() -> None:
        table = Table("at (UTC)", "+detection", "kind", "actor", "what")
        for entry in incident.timeline:
            table.add_row(
                _short(entry.at),
                _countdown(entry.at - incident.detected_at).replace(" left", ""),
                entry.kind,
                entry.actor,
                entry.message,
            )
        console.print(table)

    emit([e.to_dict() for e in incident.timeline], as_json, human)


@incident_app.command("task")
def task_done(
    incident_id: int = typer.Argument(..., help="Incident id."),
    task_id: str = typer.Argument(..., help="Task id (see incident show)."),
    note: str = typer.Option(..., "--note", help="What was done."),
    by: str = typer.Option("operator", "--by", help="Who did it."),
    as_json: bool = JsonOption,
) -> None:
    """Mark a playbook task done, with a note."""
    svc = incident_service()
    incident = svc.complete_task(incident_id, task_id, note=note, by=by)
    task = incident.task(task_id)
    doc = task.to_dict(svc.clock.now()) if task else {}
    emit(doc, as_json, lambda: console.print(f"task {task_id} of incident {incident_id} done"))


@incident_app.command("update")
def update(
    incident_id: int = typer.Argument(..., help="Incident id."),
    severity: str | None = typer.Option(None, "--severity", help="high, medium or low."),
    flag: list[str] = typer.Option([], "--flag", help="Add a fact flag (high-risk, material, …)."),
    jurisdiction: list[str] = typer.Option([], "--jurisdiction", "-j", help="Add a jurisdiction."),
    data_class: list[str] = typer.Option([], "--data-class", help="Add a data class."),
    determination: list[str] = typer.Option(
        [],
        "--determination",
        help="NAME=TIME, e.g. materiality=2026-11-28T10:00:00Z (starts a clock).",
    ),
    records: int | None = typer.Option(None, "--records", help="Records affected."),
    root_cause: str | None = typer.Option(None, "--root-cause", help="The root cause."),
    as_json: bool = JsonOption,
) -> None:
    """Record what is now known; the obligations and their due times follow."""
    svc = incident_service()
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
    emit(incident.to_dict(now), as_json, lambda: _render(incident, now))


@incident_app.command("notified")
def notified(
    incident_id: int = typer.Argument(..., help="Incident id."),
    regulation: str = typer.Option(..., "--regulation", "-r", help="Regulation id, e.g. gdpr-art33."),
    reference: str = typer.Option("", "--reference", help="The authority's case number or a link."),
    as_json: bool = JsonOption,
) -> None:
    """Record that a required notice was submitted."""
    svc = incident_service()
    incident = svc.complete_obligation(incident_id, regulation, reference, by="operator")
    ob = next(o for o in incident.obligations if o.regulation == regulation)
    emit(
        ob.to_dict(svc.clock.now()),
        as_json,
        lambda: console.print(f"{regulation}: notice recorded"),
    )


@incident_app.command("close")
def close(
    incident_id: int = typer.Argument(..., help="Incident id."),
    root_cause: str | None = typer.Option(None, "--root-cause", help="The root cause."),
    note: str = typer.Option("", "--note", help="Closing note."),
    force: bool = typer.Option(False, "--force", help="Close before recovery (e.g. a false positive)."),
    as_json: bool = JsonOption,
) -> None:
    """Close the incident (status must be recovered unless --force)."""
    svc = incident_service()
    incident = svc.close(incident_id, root_cause, note, actor="operator", force=force)
    emit(
        incident.to_dict(svc.clock.now()),
        as_json,
        lambda: console.print(f"incident {incident_id} closed"),
    )


@incident_app.command("notify")
def notify(
    incident_id: int = typer.Argument(..., help="Incident id."),
    regulation: str = typer.Option(..., "--regulation", "-r", help="Regulation id, e.g. gdpr-art33."),
    lang: str = LangOption,
    contact: str = typer.Option("", "--contact", help="Contact point (DPO name, e-mail, phone)."),
    organisation: str = typer.Option("", "--org", help="Name of the organisation."),
    out: Path | None = typer.Option(None, "--out", help="Write the draft to FILE instead of stdout."),
    as_json: bool = JsonOption,
) -> None:
    """Draft the notice a regulation requires, filled from the incident (Markdown)."""
    from keyguard.incident.notify import draft_notice

    svc = incident_service()
    incident = svc.get(incident_id)
    text = draft_notice(
        incident,
        svc.catalog.get(regulation),
        _lang(lang),
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
                "out": str(out) if out else None,
            }
        )
    elif out is None:
        console.out(text, highlight=False)
    else:
        console.print(f"notice draft written to {out}")


@incident_app.command("report")
def report(
    incident_id: int = typer.Argument(..., help="Incident id."),
    fmt: str = typer.Option("md", "--format", help="md, html or pdf."),
    lang: str = LangOption,
    out: Path | None = typer.Option(None, "--out", help="Output file (required for pdf)."),
    organisation: str = typer.Option("", "--org", help="Name of the organisation."),
    as_json: bool = JsonOption,
) -> None:
    """Write the incident report: summary, timeline vs SLA, impact, usage chart, actions."""
    from keyguard.incident.report import render_report
    from keyguard.incident.report.sources import gather_report_data

    if fmt not in ("md", "html", "pdf"):
        raise UsageError(f"unknown format {fmt!r}", hint="md, html or pdf")
    if fmt == "pdf" and out is None:
        raise UsageError("a PDF report needs --out FILE")
    svc = incident_service()
    data = gather_report_data(svc, incident_id, organisation)
    body = render_report(data, fmt, _lang(lang))
    if out is None:
        console.out(body.decode("utf-8"), highlight=False)
        return
    _write(out, body)
    doc = {
        "incident": incident_id,
        "format": fmt,
        "lang": lang,
        "out": str(out),
        "bytes": len(body),
    }
    emit(doc, as_json, lambda: console.print(f"report written to {out} ({len(body)} bytes)"))


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def register(app: typer.Typer) -> None:
    """Add ``incident`` to ``app``."""
    app.add_typer(incident_app, name="incident")
