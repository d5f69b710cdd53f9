"""``python -m keyguard.scan scan …`` / ``… rules test FILE``: the scanner's commands
without loading the rest of the CLI (fast start-up for hooks and CI). Same options, output
and exit codes as ``keyguard scan`` (SPEC §4)."""

from __future__ import annotations

import os
import sys

import typer


def main(argv: list[str] | None = None) -> int:
    """Run the scanner's commands and return the exit code."""
    from keyguard.cli.main import run_app
    from keyguard.cli.scan import register

    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    register(app)
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--debug"]
    if "--debug" in (sys.argv[1:] if argv is None else argv):
        os.environ["KEYGUARD_DEBUG"] = "1"
    return run_app(app, args)


if __name__ == "__main__":
    sys.exit(main())
