"""The ``keyguard`` console script: one Typer app, one sub-app per noun.

This module and :mod:`keyguard.api.errors` are the only places that turn
:class:`~keyguard.errors.KeyguardError` into exit codes.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from keyguard.errors import KeyguardError

if TYPE_CHECKING:
    import typer

# Typer (and the pydantic it imports) is loaded on first use of ``app``, so that a command
# with a start-up path of its own (``scan``, see FAST_PATHS) never pays for it.
_app: typer.Typer | None = None

# Each module registers its commands on ``app`` when imported (see ``register``).
COMMAND_MODULES = (
    "keyguard.cli.init_cmd",
    "keyguard.cli.keys",
    "keyguard.cli.crypto_ops",
    "keyguard.cli.data",
    "keyguard.cli.clients",
    "keyguard.cli.secret",
    "keyguard.cli.run",
    "keyguard.cli.audit",
    "keyguard.cli.scan",
    "keyguard.cli.incident",
    "keyguard.cli.respond",
    "keyguard.cli.alerts",
    "keyguard.cli.policy",
    "keyguard.cli.drill",
    "keyguard.cli.serve",
    "keyguard.cli.demo",
    "keyguard.cli.creds",
    "keyguard.cli.lease",
    "keyguard.cli.connector",
)


# Top-level command → ``module:function`` parsing its arguments without Typer; it returns
# a zero-argument callable to run, or None to leave the arguments to Typer (help, errors).
FAST_PATHS: dict[str, str] = {
    "scan": "keyguard.cli.scan_run:fast_command",
}


def _print_version(value: bool) -> None:
    if value:
        import typer

        from keyguard import __version__

        sys.stdout.write(f"keyguard {__version__}\n")
        raise typer.Exit(0)


def get_app() -> typer.Typer:
    """The Typer app with its global options (built once, on first use)."""
    global _app
    if _app is not None:
        return _app
    import typer

    _app = typer.Typer(
        name="keyguard",
        help="Leaked-key incident response: contain, assess, replace, monitor, comply, harden.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @_app.callback()
    def _main(
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
        version: bool = typer.Option(
            False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ) -> None:
        del version  # handled by its eager callback
        if debug:
            os.environ["KEYGUARD_DEBUG"] = "1"

    return _app


def __getattr__(name: str) -> Any:
    if name == "app":  # ``from keyguard.cli.main import app`` builds it
        return get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Top-level command → the modules that define it, so that one command imports only
# what it needs (start-up time is part of the time to contain). Anything else loads all.
_COMMAND_OWNERS: dict[str, tuple[str, ...]] = {
    "init": ("keyguard.cli.init_cmd",),
    "key": ("keyguard.cli.keys",),
    "encrypt": ("keyguard.cli.crypto_ops",),
    "decrypt": ("keyguard.cli.crypto_ops",),
    "sign": ("keyguard.cli.crypto_ops",),
    "verify": ("keyguard.cli.crypto_ops",),
    "data-key": ("keyguard.cli.crypto_ops",),
    "rewrap": ("keyguard.cli.crypto_ops",),
    "data": ("keyguard.cli.data",),
    "client": ("keyguard.cli.clients",),
    "secret": ("keyguard.cli.secret",),
    "run": ("keyguard.cli.run",),
    "audit": ("keyguard.cli.audit",),
    "incident": ("keyguard.cli.incident",),
    "respond": ("keyguard.cli.respond",),
    "scan": ("keyguard.cli.scan",),
    "rules": ("keyguard.cli.scan",),
    "alert": ("keyguard.cli.alerts",),
    "watch": ("keyguard.cli.alerts",),
    "policy": ("keyguard.cli.policy",),
    "drill": ("keyguard.cli.drill",),
    "serve": ("keyguard.cli.serve",),
    "demo": ("keyguard.cli.demo",),
    "creds": ("keyguard.cli.creds",),
    "lease": ("keyguard.cli.lease",),
    "connector": ("keyguard.cli.connector",),
}


_registered: set[str] = set()


def _wanted(argv: list[str]) -> tuple[str, ...]:
    if argv and argv[0] == "--version":
        return ()
    command = next((a for a in argv if not a.startswith("-")), None)
    if command is None or command not in _COMMAND_OWNERS:
        return COMMAND_MODULES
    return _COMMAND_OWNERS[command]


def _load_commands(argv: list[str] | None = None) -> None:
    import importlib

    for name in _wanted(sys.argv[1:] if argv is None else argv):
        if name in _registered:  # main() may run many times in one process (tests)
            continue
        _registered.add(name)
        module = importlib.import_module(name)
        register: Any = getattr(module, "register", None)
        if register is not None:
            register(get_app())


def _fail(message: str, hint: str, code: int) -> int:
    text = f"keyguard: error: {message}"
    if hint:
        text += f" ({hint})"
    sys.stderr.write(text.replace("\n", " ") + "\n")
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code (SPEC §4)."""
    args = sys.argv[1:] if argv is None else argv
    fast = FAST_PATHS.get(args[0]) if args else None
    if fast is not None:
        import importlib

        module, _, function = fast.partition(":")
        call = getattr(importlib.import_module(module), function)(list(args[1:]))
        if call is not None:
            return _guarded(call, args)
    return run_app(get_app(), argv, before=lambda: _load_commands(argv))


def run_app(typer_app: typer.Typer, argv: list[str] | None = None, before: Any = None) -> int:
    """Run ``typer_app`` mapping every error to one stderr line and the SPEC §4 exit code."""
    import typer

    from keyguard.cli.usage import Abort, ClickException, NoArgsIsHelpError, UsageError, plain_metavars

    args = sys.argv[1:] if argv is None else argv

    def call() -> int:
        try:
            if before is not None:
                before()
            command = typer.main.get_command(typer_app)
            plain_metavars(command)
            result = command.main(args=list(args), prog_name="keyguard", standalone_mode=False)
            return int(result) if isinstance(result, int) else 0
        except Abort:
            return _fail("aborted", "no confirmation given", 2)
        except NoArgsIsHelpError as exc:
            sys.stdout.write(exc.format_message() + "\n")
            return _fail(f"{exc.ctx.command_path} needs a command", f"see {exc.ctx.command_path} --help", 2)
        except UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "keyguard"
            return _fail(_sentence(exc.format_message()), f"see {where} --help", 2)
        except ClickException as exc:
            return _fail(_sentence(exc.format_message()), "see --help", 2)

    return _guarded(call, args)


def _guarded(call: Any, args: list[str]) -> int:
    """Run ``call()``; a KeyguardError or any other failure becomes one stderr line."""
    debug = "--debug" in args or os.environ.get("KEYGUARD_DEBUG") == "1"
    try:
        return int(call())
    except KeyguardError as exc:
        if debug:
            raise
        return _fail(exc.message, exc.hint, exc.exit_code)
    except KeyboardInterrupt:
        return _fail("interrupted", "rerun the command to resume", 130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a traceback
        if debug:
            raise
        return _fail(f"internal error: {type(exc).__name__}", "rerun with --debug for details", 10)


def _sentence(message: str) -> str:
    """Click's messages as keyguard's: lower-case start, no final full stop."""
    message = message.strip().rstrip(".")
    return message[:1].lower() + message[1:] if message[1:2].islower() else message


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
