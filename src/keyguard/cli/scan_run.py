"""``keyguard scan`` itself, and its start-up path: the arguments parsed without Typer,
and neither Typer, Rich nor pydantic imported unless a table or a progress bar is drawn.

:func:`fast_command` returns None for anything it does not fully understand (``--help``,
a bad value, an unknown option): :mod:`keyguard.cli.main` then hands the arguments to
the Typer command of :mod:`keyguard.cli.scan`, which gives the help and the errors. Both
end in :func:`execute`, so a scan behaves the same whichever parser read it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyguard.clock import parse_offset
from keyguard.errors import KeyguardError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from keyguard.scan.model import Finding
    from keyguard.scan.sources.git import HistoryStream
    from keyguard.vault.service import Vault

FORMATS = ("table", "json", "jsonl", "sarif", "csv")
SEVERITY_STYLE = {
    "critical": "bold red",
    "high": "red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}


@dataclass
class ScanOptions:
    """Every option of ``keyguard scan`` (the CLI's defaults)."""

    paths: list[str] = field(default_factory=list)
    git: bool = False
    staged: bool = False
    branch: str | None = None
    since: str | None = None
    max_commits: int | None = None
    no_ignore: bool = False
    fmt: str = "table"
    as_json: bool = False
    output: Path | None = None
    show_secrets: bool = False
    config: Path | None = None
    rule_files: list[Path] = field(default_factory=list)
    baseline: Path | None = None
    update_baseline: bool = False
    match_vault: bool = False
    open_incident: bool = False
    identify: bool = False
    jobs: int = 0


class _Unparsed(Exception):
    """The fast parser gives up: Typer will parse (and explain) these arguments."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # noqa: D102 - argparse's hook
        raise _Unparsed(message)


def _parser() -> _Parser:
    parser = _Parser(prog="keyguard scan", add_help=False, allow_abbrev=False)
    parser.add_argument("paths", nargs="*")
    for flag in ("--git", "--staged", "--no-ignore", "--show-secrets", "--update-baseline"):
        parser.add_argument(flag, action="store_true")
    for flag in ("--match-vault", "--open-incident", "--identify"):
        parser.add_argument(flag, action="store_true")
    parser.add_argument("--json", dest="as_json", action="store_true")
    parser.add_argument("--branch")
    parser.add_argument("--since")
    parser.add_argument("--max-commits", type=int)
    parser.add_argument("--format", "-f", dest="fmt", default="table")
    parser.add_argument("--output", "-o", type=Path)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--rules", dest="rule_files", type=Path, action="append", default=[])
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--jobs", "-j", type=int, default=0)
    return parser


def parse_fast(args: list[str]) -> ScanOptions | None:
    """``keyguard scan ARGS`` as options, or None when Typer should parse them."""
    if any(a in ("-h", "--help") or a.startswith("--help=") for a in args):
        return None
    try:
        namespace = _parser().parse_intermixed_args(args)
    except (_Unparsed, TypeError, ValueError):
        return None
    options = ScanOptions(**vars(namespace))
    if options.jobs < 0 or (options.max_commits is not None and options.max_commits < 1):
        return None  # Typer's range checks say why
    return options


def fast_command(args: list[str]) -> Callable[[], int] | None:
    """``keyguard scan ARGS`` as a callable (see :data:`keyguard.cli.main.FAST_PATHS`)."""
    options = parse_fast(args)
    return None if options is None else lambda: execute(options)


def parse_since(value: str | None) -> str | None:
    """``--since``: RFC 3339 or an offset such as ``-2h`` / ``-30d``; returns ISO 8601."""
    if value is None:
        return None
    if value.strip().startswith("-"):
        delta = parse_offset(value)
        if delta is not None:
            return (datetime.now(UTC) + delta).isoformat()
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()
    except ValueError:
        raise UsageError(f"invalid --since value {value!r}", hint="use RFC 3339 or an offset like -2h") from None


def _check(o: ScanOptions) -> list[str]:
    if o.fmt not in FORMATS:
        raise UsageError(f"unknown format {o.fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    if o.git and o.staged:
        raise UsageError("--git and --staged are exclusive", hint="pick one")
    if o.update_baseline and o.baseline is None:
        raise UsageError("--update-baseline needs --baseline FILE", hint="name the file")
    if (o.branch or o.since or o.max_commits) and not o.git:
        raise UsageError("--branch, --since and --max-commits need --git", hint="add --git")
    targets = o.paths or ["."]
    if "-" in targets and (o.git or o.staged):
        raise UsageError("stdin cannot be combined with --git or --staged", hint="drop -")
    for target in targets:
        if target != "-" and not Path(target).exists():
            raise UsageError(f"no such file or directory: {target}", hint="check the path")
    return targets


def _no_progress(done: int, commits: int) -> None:
    del done, commits


def _progress(enabled: bool) -> tuple[AbstractContextManager[Any], Callable[[int, int], None]]:
    if not enabled:
        return nullcontext(), _no_progress
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    from keyguard.cli.output import err_console

    bar = Progress(
        TextColumn("[bold]scanning"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[commits]} commits"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    task = bar.add_task("scan", total=None, commits=0)

    def update(done: int, commits: int) -> None:
        fields: dict[str, Any] = {"commits": commits} if commits else {}
        bar.update(task, completed=done if done else None, **fields)

    return bar, update


def render_table(findings: list[Finding], show_secrets: bool, out: Console | None = None) -> None:
    """The findings as a Rich table (a plain line when there are none)."""
    if not findings:
        if out is None:
            sys.stdout.write("No secrets found.\n")
        else:
            out.print("No secrets found.")
        return
    from rich.table import Table

    if out is None:
        from keyguard.cli.output import console

        out = console
    table = Table(title=f"{len(findings)} finding(s)", show_lines=False)
    for column in ("severity", "rule", "location", "commit", "author", "date", "secret"):
        table.add_column(column, overflow="fold")
    for finding in findings:
        managed = finding.managed_key
        rule = finding.rule + (f" → {managed['name']} v{managed['version']}" if managed else "")
        secret = finding.secret if show_secrets else finding.redacted()
        table.add_row(
            f"[{SEVERITY_STYLE[finding.severity]}]{finding.severity}[/]",
            rule,
            f"{finding.file}:{finding.line}:{finding.column}",
            (finding.commit or "")[:10],
            finding.author or "",
            (finding.date or "")[:10],
            secret.splitlines()[0] if secret else "",
        )
    out.print(table)


def _collect(o: ScanOptions, targets: list[str], since_iso: str | None) -> tuple[list[Finding], Vault | None]:
    early = _start_history(o, targets[0], since_iso) if o.git else None
    try:
        return _collect_with(o, targets, since_iso, early)
    finally:
        if early is not None:
            early.close()


def _start_history(o: ScanOptions, target: str, since_iso: str | None) -> HistoryStream | None:
    """git log of the first target, started before the rules are loaded: git walks the
    commits on the other core meanwhile (None when it is not a repository: the scan then
    reports that as before)."""
    from keyguard.scan.sources import git as gitsrc

    try:
        gitsrc.check_repo(target)
    except UsageError:
        return None
    return gitsrc.HistoryStream(target, branch=o.branch, since=since_iso, max_commits=o.max_commits)


def _collect_with(
    o: ScanOptions, targets: list[str], since_iso: str | None, early: HistoryStream | None
) -> tuple[list[Finding], Vault | None]:
    from keyguard.scan.catalog import load_rules
    from keyguard.scan.config import load_config
    from keyguard.scan.engine import Scanner
    from keyguard.scan.run import scan_history, scan_staged, scan_targets

    settings = load_config(o.config, Path(targets[0]) if targets[0] != "-" else None)
    rules = load_rules(tuple(o.rule_files) + settings.extra_rule_files)
    rules = [r for r in rules if r.id not in settings.disabled_rules]
    scanner = Scanner(rules, config=settings)
    vault = _open_vault() if o.match_vault or o.open_incident or o.identify else None
    if vault is not None:
        from keyguard.response.leaks import VaultKeyIndex
        from keyguard.scan.managed import ManagedMatcher

        scanner.managed = ManagedMatcher(VaultKeyIndex(vault))
    bar, update = _progress(sys.stderr.isatty())
    findings: list[Finding] = []
    with bar:
        if o.git:
            for position, target in enumerate(targets):
                findings.extend(
                    scan_history(
                        scanner,
                        target,
                        branch=o.branch,
                        since=since_iso,
                        max_commits=o.max_commits,
                        jobs=o.jobs,
                        progress=update,
                        stream=early if position == 0 else None,
                    )
                )
        elif o.staged:
            for target in targets:
                findings.extend(scan_staged(scanner, target))
        else:
            findings = scan_targets(scanner, targets, no_ignore=o.no_ignore, progress=update, jobs=o.jobs)
    return findings, vault


def execute(o: ScanOptions) -> int:
    """Run one scan and write its report; 1 when something was found, else 0."""
    if o.as_json:
        o.fmt = "json"
    targets = _check(o)
    since_iso = parse_since(o.since)
    findings, vault = _collect(o, targets, since_iso)
    from keyguard.scan.baseline import filter_new, load_baseline, write_baseline

    if o.update_baseline and o.baseline is not None:
        count = write_baseline(o.baseline, findings)
        sys.stderr.write(f"baseline written: {count} entr{'y' if count == 1 else 'ies'}\n")
        return 0
    if o.baseline is not None:
        findings = filter_new(findings, load_baseline(o.baseline))
    if o.open_incident and vault is not None:
        from keyguard.incident.service import IncidentService
        from keyguard.response.leaks import incident_opener, open_incidents_for

        opener = incident_opener(IncidentService(vault.engine, vault.clock))
        for ref, incident in open_incidents_for(findings, opener).items():
            sys.stderr.write(f"incident {incident} opened for {ref.name} v{ref.version}\n")
    if o.identify and vault is not None:
        _identify(vault, findings, o.open_incident)
    _report(o, findings)
    return 1 if findings else 0


def _identify(vault: Vault, findings: list[Finding], open_incident: bool) -> None:
    """``--identify``: the connectors name each finding's owner; ``--open-incident`` opens incidents on them."""
    from keyguard.cli.connector import Opened, responder, sealed_store
    from keyguard.response.identify import identify_findings, open_resource_incidents

    def warn(message: str) -> None:
        sys.stderr.write(f"keyguard: warning: {message}\n")

    store = sealed_store(vault)
    with Opened(store) as opened:
        found = identify_findings(findings, opened.connectors, warn=warn)
        if open_incident:
            runner = responder(vault, opened)
            for ref, incident in open_resource_incidents(findings, runner, found.leaked).items():
                sys.stderr.write(f"incident {incident} opened for {ref}\n")


def _report(o: ScanOptions, findings: list[Finding]) -> None:
    if o.fmt == "table" and o.output is None:
        render_table(findings, o.show_secrets)
    elif o.fmt == "table" and o.output is not None:
        from rich.console import Console

        with o.output.open("w", encoding="utf-8") as stream:
            render_table(findings, o.show_secrets, Console(file=stream, width=160))
    else:
        from keyguard.scan.report import REPORTERS

        reporter = REPORTERS[o.fmt]
        if o.output is not None:
            with o.output.open("w", encoding="utf-8", newline="") as stream:
                reporter(findings, stream, o.show_secrets)
        else:
            reporter(findings, sys.stdout, o.show_secrets)
            sys.stdout.flush()


def _open_vault() -> Vault:
    """The vault of the environment, for ``--match-vault`` / ``--open-incident``."""
    from keyguard.runtime import open_vault

    try:
        return open_vault()
    except KeyguardError:
        raise
    except Exception:  # noqa: BLE001 - any failure to open means there is no usable vault here
        raise UsageError("the vault is not initialised", hint="run keyguard init") from None
