"""``keyguard alert list/show/ack/close`` and ``keyguard watch``."""

from __future__ import annotations

import signal
import threading
import tomllib
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from keyguard.cli import context
from keyguard.cli.output import console, emit, err_console
from keyguard.config import Settings
from keyguard.errors import UsageError
from keyguard.monitor import alerts as alert_service
from keyguard.monitor.delivery import Dispatcher
from keyguard.monitor.follow import FileCursor, FileFollower
from keyguard.monitor.importers import IMPORTERS, ImportOptions
from keyguard.monitor.ingest import load_detector
from keyguard.monitor.sinks import Sink, parse_sink
from keyguard.monitor.store import fingerprint_key
from keyguard.monitor.watch import Watcher
from keyguard.runtime import open_engine

alert_app = typer.Typer(help="Alerts raised by the monitor.", no_args_is_help=True)


def _short(text: str | None, width: int) -> str:
    if not text:
        return "-"
    return text if len(text) <= width else text[: width // 2 - 1] + "…" + text[-(width // 2) :]


def _render_list(items: list[dict[str, Any]]) -> None:
    if not items:
        console.print("no alerts")
        return
    table = Table("id", "status", "sev", "rule", "key", "n", "last seen (UTC)", "title")
    for a in items:
        table.add_row(
            str(a["id"]),
            a["status"],
            a["severity"],
            a["rule"],
            _short(a["key"], 22),
            str(a["count"]),
            a["last_seen"][:16].replace("T", " "),
            a["title"],
        )
    console.print(table)


@alert_app.command("list")
def list_command(
    status: str = typer.Option("open", "--status", help="open, acknowledged, closed or all."),
    rule: str | None = typer.Option(None, "--rule"),
    key: str | None = typer.Option(None, "--key", "-k"),
    limit: int = typer.Option(100, "--limit"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """List alerts, newest first."""
    context.authorize("alert.read")
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
    alert_id: int = typer.Argument(..., metavar="ID"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Show one alert with its details and deliveries."""
    context.authorize("alert.read")
    alert = alert_service.get_alert(open_engine(), alert_id)
    emit(alert, as_json, lambda: _render_one(alert))


@alert_app.command("ack")
def ack_command(
    alert_id: int = typer.Argument(..., metavar="ID"),
    by: str = typer.Option("", "--by", help="Who acknowledges."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Acknowledge an open alert."""
    context.authorize("alert.write")
    alert = alert_service.acknowledge(open_engine(), alert_id, by=by)
    emit(alert, as_json, lambda: console.print(f"alert {alert_id} acknowledged"))


@alert_app.command("close")
def close_command(
    alert_id: int = typer.Argument(..., metavar="ID"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
) -> None:
    """Close an alert."""
    context.authorize("alert.write")
    alert = alert_service.close(open_engine(), alert_id)
    emit(alert, as_json, lambda: console.print(f"alert {alert_id} closed"))


def monitor_config(settings: Settings) -> dict[str, Any]:
    """The ``[monitor]`` table of ``$KEYGUARD_HOME/keyguard.toml`` (empty when absent)."""
    path = settings.config_file
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        raise UsageError(f"cannot read {path.name}", hint="check the TOML syntax") from None
    section = data.get("monitor", {})
    return section if isinstance(section, dict) else {}


def build_sinks(urls: list[str], config: dict[str, Any]) -> list[Sink]:
    """Sinks from ``--sink`` URLs plus ``[monitor] sinks`` of keyguard.toml."""
    configured = config.get("sinks", [])
    secret = config.get("webhook_secret")
    all_urls = list(urls) + [str(u) for u in configured if isinstance(u, str)]
    return [parse_sink(u, webhook_secret=str(secret) if secret else None) for u in all_urls]


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
    document = {"events": total.events, "alerts": total.alerts}
    emit(
        document,
        as_json,
        lambda: console.print(f"{total.events} events, {total.alerts} new alerts"),
    )
    return 1 if once and total.alerts else 0


def register(app: typer.Typer) -> None:
    """Add ``alert`` and ``watch`` to ``app``."""
    app.add_typer(alert_app, name="alert")
    app.command("watch")(watch_command)
