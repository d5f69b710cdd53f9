"""``keyguard scan`` and ``keyguard rules``: thin adapters over :mod:`keyguard.scan`."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from keyguard.cli.output import console, err_console
from keyguard.clock import parse_offset
from keyguard.errors import KeyguardError, UsageError
from keyguard.scan.baseline import filter_new, load_baseline, write_baseline
from keyguard.scan.catalog import (
    check_unique,
    load_rules,
    parse_rule_file,
    validate_examples,
)
from keyguard.scan.config import load_config
from keyguard.scan.engine import Scanner
from keyguard.scan.managed import ManagedMatcher
from keyguard.scan.model import Finding
from keyguard.scan.report import REPORTERS
from keyguard.scan.run import scan_history, scan_staged, scan_targets

if TYPE_CHECKING:
    from keyguard.vault.service import Vault

FORMATS = ("table", "json", "jsonl", "sarif", "csv")
SEVERITY_STYLE = {
    "critical": "bold red",
    "high": "red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}


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


def _no_progress(done: int, commits: int) -> None:
    del done, commits


def _progress(enabled: bool) -> tuple[AbstractContextManager[Any], Any]:
    if not enabled:
        return nullcontext(), _no_progress
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


def _render_table(findings: list[Finding], show_secrets: bool, out: Console = console) -> None:
    if not findings:
        out.print("No secrets found.")
        return
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


def scan(
    paths: list[str] = typer.Argument(None, help="Files, directories or - for stdin."),
    git: bool = typer.Option(False, "--git", help="Scan the full git history of every ref."),
    staged: bool = typer.Option(False, "--staged", help="Scan only staged changes."),
    branch: str | None = typer.Option(None, "--branch", help="Only this ref's history."),
    since: str | None = typer.Option(None, "--since", help="Only commits since (RFC 3339, -2h)."),
    max_commits: int | None = typer.Option(None, "--max-commits", min=1),
    no_ignore: bool = typer.Option(False, "--no-ignore", help="Do not honour .gitignore."),
    fmt: str = typer.Option("table", "--format", "-f", help="table|json|jsonl|sarif|csv"),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the report here."),
    show_secrets: bool = typer.Option(False, "--show-secrets", help="Do not redact secrets."),
    config: Path | None = typer.Option(None, "--config", help="Path to a .keyguard.toml."),
    rule_files: list[Path] = typer.Option([], "--rules", help="Extra rule file (TOML)."),
    baseline: Path | None = typer.Option(None, "--baseline", help="Ignore findings in it."),
    update_baseline: bool = typer.Option(False, "--update-baseline", help="Rewrite it."),
    match_vault: bool = typer.Option(False, "--match-vault", help="Recognise vault keys."),
    open_incident: bool = typer.Option(False, "--open-incident", help="Open incidents."),
    identify: bool = typer.Option(False, "--identify", help="Ask the connectors who owns each finding."),
    jobs: int = typer.Option(0, "--jobs", "-j", min=0, help="Worker processes (0 = auto)."),
) -> int:
    """Find leaked secrets in files, archives, stdin or git history."""
    fmt = "json" if as_json else fmt
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    if git and staged:
        raise UsageError("--git and --staged are exclusive", hint="pick one")
    if update_baseline and baseline is None:
        raise UsageError("--update-baseline needs --baseline FILE", hint="name the file")
    if (branch or since or max_commits) and not git:
        raise UsageError("--branch, --since and --max-commits need --git", hint="add --git")
    targets = paths or ["."]
    if "-" in targets and (git or staged):
        raise UsageError("stdin cannot be combined with --git or --staged", hint="drop -")
    for target in targets:
        if target != "-" and not Path(target).exists():
            raise UsageError(f"no such file or directory: {target}", hint="check the path")
    since_iso = parse_since(since)
    settings = load_config(config, Path(targets[0]) if targets[0] != "-" else None)
    rules = load_rules(tuple(rule_files) + settings.extra_rule_files)
    rules = [r for r in rules if r.id not in settings.disabled_rules]
    scanner = Scanner(rules, config=settings)
    vault = _open_vault() if match_vault or open_incident or identify else None
    if vault is not None:
        from keyguard.response.leaks import VaultKeyIndex

        scanner.managed = ManagedMatcher(VaultKeyIndex(vault))

    bar, update = _progress(sys.stderr.isatty())
    with bar:
        findings: list[Finding] = []
        if git:
            for target in targets:
                findings.extend(
                    scan_history(
                        scanner,
                        target,
                        branch=branch,
                        since=since_iso,
                        max_commits=max_commits,
                        jobs=jobs,
                        progress=update,
                    )
                )
        elif staged:
            for target in targets:
                findings.extend(scan_staged(scanner, target))
        else:
            findings = scan_targets(scanner, targets, no_ignore=no_ignore, progress=update, jobs=jobs)

    if update_baseline and baseline is not None:
        count = write_baseline(baseline, findings)
        err_console.print(f"baseline written: {count} entr{'y' if count == 1 else 'ies'}")
        return 0
    if baseline is not None:
        findings = filter_new(findings, load_baseline(baseline))
    if open_incident and vault is not None:
        from keyguard.incident.service import IncidentService
        from keyguard.response.leaks import incident_opener, open_incidents_for

        opener = incident_opener(IncidentService(vault.engine, vault.clock))
        for ref, incident in open_incidents_for(findings, opener).items():
            err_console.print(f"incident {incident} opened for {ref.name} v{ref.version}")
    if identify and vault is not None:
        _identify(vault, findings, open_incident)

    if fmt == "table" and output is None:
        _render_table(findings, show_secrets)
    elif fmt == "table" and output is not None:
        with output.open("w", encoding="utf-8") as stream:
            _render_table(findings, show_secrets, Console(file=stream, width=160))
    else:
        reporter = REPORTERS[fmt]
        if output is not None:
            with output.open("w", encoding="utf-8", newline="") as stream:
                reporter(findings, stream, show_secrets)
        else:
            reporter(findings, sys.stdout, show_secrets)
            sys.stdout.flush()
    return 1 if findings else 0


def _identify(vault: Vault, findings: list[Finding], open_incident: bool) -> None:
    """``--identify``: the connectors name each finding's owner; ``--open-incident`` opens incidents on them."""
    from keyguard.cli.connector import Opened, responder, sealed_store
    from keyguard.response.identify import identify_findings, open_resource_incidents

    store = sealed_store(vault)
    with Opened(store) as opened:
        found = identify_findings(findings, opened.connectors, warn=lambda m: err_console.print(f"[yellow]{m}[/]"))
        if open_incident:
            runner = responder(vault, opened)
            for ref, incident in open_resource_incidents(findings, runner, found.leaked).items():
                err_console.print(f"incident {incident} opened for {ref}")


def _open_vault() -> Vault:
    """The vault of the environment, for ``--match-vault`` / ``--open-incident``."""
    from keyguard.runtime import open_vault

    try:
        return open_vault()
    except KeyguardError:
        raise
    except Exception:  # noqa: BLE001 - any failure to open means there is no usable vault here
        raise UsageError("the vault is not initialised", hint="run keyguard init") from None


def rules_test(
    files: list[Path] = typer.Argument(..., help="TOML rule files to check."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> int:
    """Check user rules: ids unique, regexes compile, every example behaves."""
    import json

    from keyguard.scan.catalog import _builtin

    builtin = list(_builtin(False))
    user = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}", hint="check the path") from None
        user.extend(parse_rule_file(text, path.stem, str(path)))
    check_unique(builtin + user)
    failures = validate_examples(builtin + user, user)
    if as_json:
        sys.stdout.write(json.dumps({"rules": len(user), "failures": [str(f) for f in failures]}))
        sys.stdout.write("\n")
    else:
        for failure in failures:
            console.print(f"[red]FAIL[/] {failure}")
        console.print(f"{len(user)} rule(s) checked, {len(failures)} failure(s)")
    return 1 if failures else 0


def rules_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> int:
    """List the built-in rule catalog."""
    import json

    rules = load_rules()
    if as_json:
        rows = [{"id": r.id, "family": r.family, "severity": r.severity, "description": r.description} for r in rules]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    table = Table(title=f"{len(rules)} rules")
    for column in ("id", "family", "severity", "description"):
        table.add_column(column)
    for rule in rules:
        table.add_row(rule.id, rule.family, rule.severity, rule.description)
    console.print(table)
    return 0


def register(app: typer.Typer) -> None:
    """Add ``scan`` and the ``rules`` sub-app to the keyguard CLI."""
    app.command("scan")(scan)
    rules_app = typer.Typer(help="Inspect and test secret-detection rules.", no_args_is_help=True)
    rules_app.command("test")(rules_test)
    rules_app.command("list")(rules_list)
    app.add_typer(rules_app, name="rules")
