"""``keyguard alert list/show/ack/close`` and ``keyguard watch``."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from sqlalchemy import Engine, func, select
from sqlalchemy import Table as SqlTable

from keyguard.cli import context
from keyguard.cli.output import MAX_COUNT, MAX_ID, console, emit, err_console, local_time
from keyguard.config import Settings
from keyguard.errors import UsageError
from keyguard.monitor import alerts as alert_service
from keyguard.monitor.delivery import Dispatcher
from keyguard.monitor.follow import FileCursor, FileFollower
from keyguard.monitor.importers import IMPORTERS, ImportOptions
from keyguard.monitor.ingest import load_detector
from keyguard.monitor.sinks.config import build_sinks, monitor_config
from keyguard.monitor.store import fingerprint_key
from keyguard.monitor.watch import Watcher
from keyguard.runtime import open_engine
from keyguard.store.monitor_tables import AlertDelivery

alert_app = typer.Typer(help="Alerts raised by the monitor.", no_args_is_help=True)


def _short(text: str | None, width: int) -> str:
    if not text:
        return "-"
    return text if len(text) <= width else text[: width // 2 - 1] + "…" + text[-(width // 2) :]


def _render_list(items: list[dict[str, Any]]) -> None:
    if not items:
        console.print("no alerts")
        return
    table = Table("id", "status", "sev", "rule", "key", "n", "last seen", "title")
    for a in items:
        table.add_row(
            str(a["id"]),
            a["status"],
            a["severity"],
            a["rule"],
            _short(a["key"], 22),
            str(a["count"]),
            local_time(a["last_seen"]),
            a["title"],
        )
    console.print(table)


def _render_groups(groups: list[dict[str, Any]]) -> None:
    table = Table("latest", "sev", "rule", "key", "source", "alerts", "events", "first seen", "last seen (UTC)")
    for g in groups:
        table.add_row(
            str(g["latest_id"]),
            g["severity"],
            g["rule"],
            _short(g["key"], 22),
            _short(g["source"], 22),
            str(g["alerts"]),
            str(g["count"]),
            g["first_seen"][:16].replace("T", " "),
            g["last_seen"][:16].replace("T", " "),
        )
    console.print(table if groups else "no alerts")


@alert_app.command("list")
def list_command(
    status: str = typer.Option("open", "--status", help="open, acknowledged, closed or all."),
    rule: str | None = typer.Option(None, "--rule"),
    key: str | None = typer.Option(None, "--key", "-k"),
    limit: int = typer.Option(100, "--limit", min=1, max=MAX_COUNT),
    group: bool = typer.Option(False, "--group", help="One line per rule, key and source, with counts."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """List alerts, newest first (--group: repeated alerts folded by rule, key and source)."""
    context.authorize("alert.read")
    if group:
        groups = alert_service.list_alert_groups(
            open_engine(), status=None if status == "all" else status, rule=rule, key=key, limit=limit
        )
        emit(groups, as_json, lambda: _render_groups(groups))
        return
    items = alert_service.list_alerts(
        open_engine(), status=None if status == "all" else status, rule=rule, key=key, limit=limit
    )
    emit(items, as_json, lambda: _render_list(items))


def _render_one(alert: dict[str, Any]) -> None:
    for name in (
        "id",
        "status",
        "severity",
        "rule",
        "key",
        "title",
        "count",
        "first_seen",
        "last_seen",
        "incident_id",
        "acknowledged_by",
    ):
        console.print(f"[bold]{name}[/bold]: {alert.get(name)}")
    for d in alert.get("deliveries", []):
        console.print(f"  delivery {d['sink']}: {d['outcome']} after {d['attempts']} tries")


@alert_app.command("show")
def show_command(
    alert_id: int = typer.Argument(..., metavar="ID", min=1, max=MAX_ID),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Show one alert with its details and deliveries."""
    context.authorize("alert.read")
    alert = alert_service.get_alert(open_engine(), alert_id)
    emit(alert, as_json, lambda: _render_one(alert))


@alert_app.command("ack")
def ack_command(
    alert_ids: list[int] = typer.Argument(..., metavar="ID...", min=1, max=MAX_ID),
    by: str = typer.Option("", "--by", help="Who acknowledges."),
    group: bool = typer.Option(False, "--group", help="Also every open alert of the same rule, key and source."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Acknowledge open alerts (with --group, their whole groups)."""
    context.authorize("alert.write")
    engine = open_engine()
    if group:
        done = sorted({i for a in alert_ids for i in alert_service.acknowledge_group(engine, a, by=by)})
        emit({"acknowledged": done}, as_json, lambda: console.print(f"{len(done)} alert(s) acknowledged"))
        return
    alerts = [alert_service.acknowledge(engine, a, by=by) for a in alert_ids]
    emit(
        alerts[0] if len(alerts) == 1 else alerts,
        as_json,
        lambda: console.print(f"alert(s) {', '.join(map(str, alert_ids))} acknowledged"),
    )


@alert_app.command("close")
def close_command(
    alert_id: int = typer.Argument(..., metavar="ID", min=1, max=MAX_ID),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Close an alert."""
    context.authorize("alert.write")
    alert = alert_service.close(open_engine(), alert_id)
    emit(alert, as_json, lambda: console.print(f"alert {alert_id} closed"))


def watch_command(
    once: bool = typer.Option(False, "--once", help="Process the backlog and exit."),
    sink: list[str] = typer.Option([], "--sink", help="Alert destination URL (repeatable)."),
    follow: list[Path] = typer.Option([], "--follow", help="Also follow this growing file."),
    fmt: str = typer.Option("jsonl", "--format", help="Format of --follow files."),
    credential: str | None = typer.Option(None, "--credential", help="combined: credential rule."),
    no_audit: bool = typer.Option(False, "--no-audit", help="Do not follow keyguard's audit log."),
    rules: list[Path] = typer.Option([], "--rules", help="Rule files or folders instead of the built-in ones."),
    poll: float = typer.Option(0.25, "--poll", help="Polling interval in seconds."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> int:
    """Run detection on new events and deliver alerts (exit 1 when --once raised alerts)."""
    context.authorize("alert.write")
    if fmt not in IMPORTERS:
        raise UsageError(f"unknown format {fmt!r}", hint="use " + ", ".join(sorted(IMPORTERS)))
    settings = Settings.from_env()
    engine = open_engine(settings)
    sinks = build_sinks(sink, monitor_config(settings))
    options = ImportOptions(
        credential=credential,
        fingerprint_key=fingerprint_key(engine) if fmt == "combined" else b"",
    )
    followers = [FileFollower(path, fmt, options, FileCursor()) for path in follow]
    dispatcher = Dispatcher(engine, sinks) if sinks else None
    detector = load_detector(engine, rules or None)
    watcher = Watcher(engine, dispatcher=dispatcher, files=followers, follow_audit=not no_audit, detector=detector)
    try:
        if once:
            total = watcher.run_once()
        else:
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            if not as_json:
                err_console.print(f"watching ({len(sinks)} sinks); Ctrl-C to stop")
            try:
                total = watcher.run(stop, poll=poll)
            except KeyboardInterrupt:
                total = watcher.total
    finally:
        if dispatcher is not None:
            dispatcher.close()
    undelivered = len(dead_letters(engine, dispatcher.sink_names)) if dispatcher is not None else 0
    document: dict[str, Any] = {"events": total.events, "alerts": total.alerts}
    if undelivered:
        document["undelivered"] = undelivered
    emit(
        document,
        as_json,
        lambda: console.print(f"{total.events} events, {total.alerts} new alerts"),
    )
    if undelivered:
        err_console.print(
            f"{undelivered} alert deliveries failed and are kept; retry them with keyguard alert redeliver"
        )
    return 1 if once and (total.alerts or undelivered) else 0


def dead_letters(engine: Engine, sinks: list[str]) -> list[Any]:
    """Deliveries whose latest outcome is ``dead``, for the sinks named (newest record per alert and sink)."""
    if not sinks:
        return []
    deliveries: SqlTable = AlertDelivery.__table__  # type: ignore[assignment]
    latest = select(func.max(deliveries.c.id)).group_by(deliveries.c.alert_id, deliveries.c.sink)
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(deliveries)
                .where(deliveries.c.id.in_(latest), deliveries.c.outcome == "dead", deliveries.c.sink.in_(sinks))
                .order_by(deliveries.c.id)
            ).all()
        )


@alert_app.command("redeliver")
def redeliver_command(
    sink: list[str] = typer.Option([], "--sink", help="Alert destination URL (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> int:
    """Retry the deliveries that failed (dead letters) to the configured sinks; exit 1 if some still fail."""
    settings = Settings.from_env()
    engine = open_engine(settings)
    sinks = build_sinks(sink, monitor_config(settings))
    if not sinks:
        raise UsageError("no alert destination configured", hint="pass --sink URL or set [monitor] sinks")
    dispatcher = Dispatcher(engine, sinks)
    try:
        pending = dead_letters(engine, dispatcher.sink_names)
        for row in pending:
            payload = row.payload if isinstance(row.payload, dict) else {"id": row.alert_id}
            dispatcher.submit({**payload, "id": row.alert_id}, only={row.sink})
    finally:
        dispatcher.close()
    still = len(dead_letters(engine, dispatcher.sink_names))
    document = {"retried": len(pending), "delivered": len(pending) - still, "undelivered": still}
    emit(
        document,
        as_json,
        lambda: console.print(
            f"{document['retried']} retried, {document['delivered']} delivered, {still} still failing"
        ),
    )
    return 1 if still else 0


def register(app: typer.Typer) -> None:
    """Add ``alert`` and ``watch`` to ``app``."""
    app.add_typer(alert_app, name="alert")
    app.command("watch")(watch_command)
