"""How an incident looks on the console: phases, tasks, obligations and countdowns."""

from __future__ import annotations

from datetime import datetime, timedelta

import typer
from rich.table import Table

from keyguard.cli.output import console, local_time
from keyguard.errors import UsageError
from keyguard.incident.model import Incident, ItemState

_STYLE = {
    ItemState.DONE: "green",
    ItemState.OVERDUE: "bold red",
    ItemState.PENDING: "yellow",
    ItemState.NOT_APPLICABLE: "dim",
}


def checked_lang(lang: str) -> str:
    """``--lang``: en or zh; UsageError otherwise."""
    if lang not in ("en", "zh"):
        raise UsageError(f"unknown language {lang!r}", hint="en or zh")
    return lang


def countdown(left: timedelta | None) -> str:
    """``1d 2h 03m left`` / ``… overdue`` / ``-``."""
    if left is None:
        return "-"
    sign = left.total_seconds() < 0
    seconds = abs(int(left.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    text = f"{days}d {hours}h {minutes:02d}m" if days else f"{hours}h {minutes:02d}m"
    return text + (" overdue" if sign else " left")


def styled(state: ItemState) -> str:
    """A task or obligation state in its colour."""
    return f"[{_STYLE[state]}]{state}[/{_STYLE[state]}]"


def short_time(at: datetime | None) -> str:
    """``YYYY-MM-DD HH:MM:SS ZONE`` in the user's time zone, or ``-``."""
    return local_time(at)


def render_incident(incident: Incident, now: datetime, lang: str = "en") -> None:
    """Phases, tasks and obligations of ``incident`` as tables on the console."""
    console.print(
        f"[bold]incident {incident.id}[/bold]  {incident.title}\n"
        f"status={incident.status} severity={incident.severity} "
        f"keys={', '.join(str(k) for k in incident.keys)}\n"
        f"exposed {local_time(incident.exposed_at)}  detected {local_time(incident.detected_at)}"
        + (f"\nsource: {incident.source}" if incident.source else "")
    )
    for phase in incident.phases:
        title = f"{phase.title.get(lang)} — due {short_time(phase.due_at)} ({phase.state(now)})"
        table = Table(title=title, title_justify="left", expand=False)
        table.add_column("task", overflow="fold")
        table.add_column("due", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("done", overflow="fold")
        for task in phase.tasks:
            done = f"{short_time(task.done_at)} {task.done_by}" if task.done_at else "-"
            table.add_row(
                f"[bold]{task.id}[/bold] [dim]({task.owner})[/dim]\n{task.title.get(lang)}",
                short_time(task.due_at),
                styled(task.state(now)),
                done,
            )
        console.print(table)
    if incident.obligations:
        table = Table(title="obligations", title_justify="left")
        table.add_column("regulation", overflow="fold")
        table.add_column("due", overflow="fold")
        table.add_column("countdown", no_wrap=True)
        table.add_column("status", no_wrap=True)
        for ob in incident.obligations:
            table.add_row(
                f"[bold]{ob.regulation}[/bold]\n[dim]{ob.audience.get(lang)}[/dim]",
                (short_time(ob.due_at) if ob.due_at else ob.deadline.get(lang))
                + (f"\n[dim]{ob.due_basis.get(lang)}[/dim]" if ob.due_basis else ""),
                countdown(ob.countdown(now)),
                styled(ob.state(now)),
            )
        console.print(table)
    else:
        console.print("no notification duties for these facts (jurisdictions, data classes, flags)")
    for item in incident.attention(now):
        console.print(f"[bold red]needs attention:[/bold red] {item}")


def exit_if_attention(incident: Incident, now: datetime) -> None:
    """Exit 1 when a deadline of ``incident`` is missed."""
    if incident.attention(now):
        raise typer.Exit(code=1)
