"""``keyguard demo``: the main job — a leaked key handled end to end on a fresh home."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from keyguard.cli.output import JsonOption, console, emit


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""

    @app.command("demo")
    def demo(
        home: Path = typer.Option(Path("keyguard-demo"), "--home", help="Fresh embedded home (recreated each run)."),
        as_json: bool = JsonOption,
    ) -> None:
        """Seed an organisation, leak a key, run the response, write the reports."""
        from keyguard.demo import run_demo

        started = time.perf_counter()
        say = (
            (lambda _m: None)
            if as_json
            else (lambda m: console.print(f"[dim]{time.perf_counter() - started:5.1f}s[/dim] {m}"))
        )
        result = run_demo(home, say)
        result.summary["seconds"] = round(time.perf_counter() - started, 1)

        prog = sys.argv[0] if sys.argv[0].endswith("keyguard") else "keyguard"

        def human() -> None:
            console.print(
                f"\n[bold green]done in {result.summary['seconds']} s.[/bold green] "
                f"Reports of incident {result.incident}:"
            )
            for name, path in sorted(result.reports.items()):
                console.print(f"  {name:8s} {path}")
            console.print(
                "\nLook around (the demo home is an ordinary keyguard home):\n"
                f"  export KEYGUARD_HOME={result.home}\n"
                f"  {prog} incident show {result.incident}          # phases, tasks, regulators' countdowns\n"
                f"  {prog} incident timeline {result.incident}\n"
                f"  {prog} incident rollout {result.incident}       # who switched to the new key version\n"
                f"  {prog} audit verify                 # the tamper-evident log\n"
                f"  xdg-open {result.reports.get('en.html', '')}"
            )

        emit(result.summary, as_json, human)
