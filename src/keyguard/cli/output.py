"""Shared output helpers of the CLI: JSON documents, Rich consoles, confirmations."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from keyguard.config import MAX_COUNT, MAX_ID, MAX_VERSION
from keyguard.errors import UsageError

__all__ = ["MAX_BATCH", "MAX_COUNT", "MAX_ID", "MAX_VERSION"]

# Off a terminal (a pipe, a file) Rich would cut tables to 80 columns: give it all the
# width it needs instead, unless COLUMNS says otherwise.
_UNLIMITED = 100_000


def _width(stream: Any) -> int | None:
    if os.environ.get("COLUMNS") or (hasattr(stream, "isatty") and stream.isatty()):
        return None
    return _UNLIMITED


console = Console(highlight=False, soft_wrap=True, width=_width(sys.stdout))
err_console = Console(stderr=True, highlight=False, width=_width(sys.stderr))

# Integers are checked by the parser (exit 2) before anything is stored.
MAX_BATCH = 100_000

JsonOption = typer.Option(False, "--json", help="Print one JSON document on stdout.")
YesOption = typer.Option(False, "--yes", "-y", help="Skip the confirmation question.")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def local_time(at: datetime | str | None) -> str:
    """A time for people: to the second, in the user's time zone (``TZ``), the zone named.

    ``2026-12-03 09:14:05 CET``; naive values are UTC (as stored). ``-`` for no time.
    """
    if at is None or at == "":
        return "-"
    if isinstance(at, str):
        try:
            when = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            return at
    else:
        when = at
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    local = when.astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or local.strftime("%z"))


def absolute(path: Path | str) -> str:
    """A file reference as stored: absolute, so that commands from another directory find it."""
    return os.path.abspath(os.path.expanduser(str(path)))


def print_json(document: Any) -> None:
    """Write one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, default=_default, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def emit(document: Any, as_json: bool, human: Callable[[], None]) -> None:
    """Print ``document`` as JSON when asked, else call ``human`` to render it."""
    if as_json:
        print_json(document)
    else:
        human()


def confirm(question: str, yes: bool) -> None:
    """Ask before an irreversible step; refuse without a terminal unless ``--yes`` (SPEC §4)."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("refusing an irreversible operation without confirmation", hint="pass --yes")
    if not typer.confirm(question, default=False, err=True):
        raise UsageError("not confirmed", hint="nothing was changed")


def progress_bar(show: bool) -> Progress:
    """A Rich progress bar on stderr (disabled off a terminal)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        disable=not show,
    )
