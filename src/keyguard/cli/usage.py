"""The argument parser's exceptions and help layout, whichever click typer runs on.

Typer ≥ 0.22 carries its own copy of click (``typer._click``) and raises that copy's
exceptions, not the installed ``click`` package's; older typer raises ``click``'s.
:mod:`keyguard.cli.main` catches the classes named here, so a bad option or a
missing argument is a usage error (exit 2), never an internal one.
"""

from __future__ import annotations

from typing import Any

import typer

try:
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - typer without its own click
    from click.exceptions import (  # type: ignore[assignment]
        ClickException,
        NoArgsIsHelpError,
        UsageError,
    )

Abort = typer.Abort

__all__ = ["Abort", "ClickException", "NoArgsIsHelpError", "UsageError", "plain_metavars"]


def _no_type(param: Any) -> Any:
    if param is not None and (getattr(param, "is_flag", False) or getattr(param, "count", False)):
        param.metavar = ""
    return param


def plain_metavars(command: Any) -> None:
    """Flags take no value, so their help shows no type (typer prints ``<bool>``)."""
    for param in getattr(command, "params", ()):
        _no_type(param)
    help_option = getattr(command, "get_help_option", None)
    if help_option is not None:
        command.get_help_option = lambda ctx: _no_type(help_option(ctx))
    for sub in getattr(command, "commands", {}).values():
        plain_metavars(sub)
