"""``keyguard scan`` and ``keyguard rules``: thin Typer adapters over :mod:`keyguard.scan`
(the scan itself, and its Typer-free start-up path, are in :mod:`keyguard.cli.scan_run`)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from keyguard.cli.output import console
from keyguard.cli.scan_run import ScanOptions, execute
from keyguard.errors import UsageError
from keyguard.scan.catalog import check_unique, load_rules, parse_rule_file, validate_examples


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
    return execute(
        ScanOptions(
            paths=list(paths or []),
            git=git,
            staged=staged,
            branch=branch,
            since=since,
            max_commits=max_commits,
            no_ignore=no_ignore,
            fmt=fmt,
            as_json=as_json,
            output=output,
            show_secrets=show_secrets,
            config=config,
            rule_files=list(rule_files),
            baseline=baseline,
            update_baseline=update_baseline,
            match_vault=match_vault,
            open_incident=open_incident,
            identify=identify,
            jobs=jobs,
        )
    )


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
