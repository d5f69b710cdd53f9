"""``python -m keyguard.scan scan …`` / ``… rules test FILE``: the scanner's commands
without loading the rest of the CLI (fast start-up for hooks and CI). Same options, output
and exit codes as ``keyguard scan`` (SPEC §4)."""

from __future__ import annotations

import os
import sys

import click
import typer

from keyguard.errors import KeyguardError


def main(argv: list[str] | None = None) -> int:
    """Run the scanner's commands and return the exit code."""
    from keyguard.cli.scan import register

    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    register(app)
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or bool(os.environ.get("KEYGUARD_DEBUG"))
    args = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--debug"]
    try:
        result = app(args=args, prog_name="keyguard", standalone_mode=False)
        return int(result) if isinstance(result, int) else 0
    except KeyguardError as exc:
        if debug:
            raise
        return _fail(exc.message, exc.hint, exc.exit_code)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        return _fail(exc.format_message(), "see --help", 2)
    except KeyboardInterrupt:
        return _fail("interrupted", "rerun the command to resume", 130)
    except Exception as exc:  # noqa: BLE001 - never a traceback without --debug
        if debug:
            raise
        return _fail(f"internal error: {type(exc).__name__}", "rerun with --debug for details", 10)


def _fail(message: str, hint: str, code: int) -> int:
    text = f"keyguard: error: {message}" + (f" ({hint})" if hint else "")
    sys.stderr.write(text.replace("\n", " ") + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
