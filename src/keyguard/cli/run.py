"""``keyguard run --secret ENV=NAME[@VERSION] … -- CMD ARGS``: a service started with its secrets.

The values go into CMD's environment only: never argv (``ps`` shows it), never
a file. Every value is read first (each read is an audit event naming the
caller and the variable), then keyguard *replaces itself* with CMD (``exec``):
CMD keeps keyguard's process id, so every signal sent to it reaches CMD
directly, the exit status is CMD's own, and no keyguard process stays behind
holding the values.

Locally the vault is ``$KEYGUARD_HOME`` / ``KEYGUARD_DATABASE_URL`` (the caller
is ``KEYGUARD_TOKEN``'s client, else the local administrator); with ``--server
URL --token-env VAR`` the values come from a running ``keyguard serve`` with the
bearer token in the variable VAR. The variables that open the vault or hold a
token (the passphrase, the PKCS#11 PIN, the one-time code, ``KEYGUARD_TOKEN``, VAR) are not
passed on: CMD gets the values it was given, not the means to read more.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request

import typer

from keyguard.errors import (
    IntegrityError,
    KeyguardError,
    NotFoundError,
    PermissionDeniedError,
    RefusedError,
    UsageError,
)
from keyguard.vault.secrets import parse_secret_ref

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Never handed to the child: they open the vault or stand for a caller.
_WITHHELD = (
    "KEYGUARD_PASSPHRASE",
    "KEYGUARD_NEW_PASSPHRASE",
    "KEYGUARD_PKCS11_PIN",
    "KEYGUARD_OTP",
    "KEYGUARD_TOKEN",
)
_TIMEOUT = 10.0


def parse_mapping(text: str) -> tuple[str, str, int | None]:
    """``ENV=NAME[@VERSION]`` → ``(env, name, version or None)``."""
    env, sep, ref = text.partition("=")
    if not sep or not _ENV_NAME.match(env):
        raise UsageError(f"invalid --secret {text!r}", hint="use ENV=NAME or ENV=NAME@VERSION, e.g. DB_PASSWORD=db")
    name, version = parse_secret_ref(ref)
    return env, name, version


def _check_env_value(env: str, value: bytes) -> str:
    if b"\x00" in value:
        raise UsageError(f"the secret for {env} holds a NUL byte", hint="an environment variable cannot carry it")
    return os.fsdecode(value)


def fetch_local(mappings: list[tuple[str, str, int | None]]) -> dict[str, str]:
    """Read every mapped secret from the local vault (audited)."""
    from keyguard.cli import context
    from keyguard.vault.secrets import SecretStore

    vault = context.vault()
    try:
        store = SecretStore(vault)
        caller = context.principal(vault)
        values = {
            env: _check_env_value(env, store.get(caller, name, version, purpose=f"run: {env}").value)
            for env, name, version in mappings
        }
    finally:
        vault.close()
        vault.engine.dispose()
    return values


def _remote_error(status: int, body: bytes, name: str) -> KeyguardError:
    try:
        reason = str(json.loads(body).get("reason", ""))[:200]
    except (ValueError, AttributeError):
        reason = ""
    text = reason or f"the server answered {status} for secret {name!r}"
    if status in (401, 403):
        return PermissionDeniedError(text, hint="check the token and the client's secret grant")
    if status == 404:
        return NotFoundError(text)
    if status == 409:
        return IntegrityError(text)
    if status == 422:
        return UsageError(text)
    return KeyguardError(text, hint="see the server's log")


def fetch_remote(server: str, token: str, mappings: list[tuple[str, str, int | None]]) -> dict[str, str]:
    """Read every mapped secret from a running ``keyguard serve`` at ``server``."""
    parsed = urllib.parse.urlsplit(server)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError("--server must be an http(s) URL", hint="e.g. http://127.0.0.1:8787")
    base = server.rstrip("/")
    values: dict[str, str] = {}
    for env, name, version in mappings:
        url = f"{base}/v1/secrets/{urllib.parse.quote(name)}"
        if version is not None:
            url += f"?version={version}"
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": "keyguard-run",
                "X-Keyguard-Purpose": f"run: {env}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:  # noqa: S310
                document = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise _remote_error(exc.code, exc.read(), name) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise KeyguardError(
                f"cannot reach {base}: {type(exc).__name__}", hint="is keyguard serve running?"
            ) from None
        try:
            raw = base64.b64decode(document["value_b64"], validate=True)
        except (KeyError, TypeError, ValueError):
            raise KeyguardError(f"the server's answer for secret {name!r} has no value") from None
        values[env] = _check_env_value(env, raw)
    return values


def child_environment(values: dict[str, str], token_env: str | None) -> dict[str, str]:
    """The environment CMD starts with: this one, less what opens the vault, plus the values."""
    env = {k: v for k, v in os.environ.items() if k not in _WITHHELD and k != token_env}
    env.update(values)
    return env


def run(
    secret: list[str] = typer.Option(
        ..., "--secret", "-s", help="ENV=NAME or ENV=NAME@VERSION: put secret NAME into variable ENV (repeatable)."
    ),
    server: str | None = typer.Option(None, "--server", help="Read from a running keyguard serve at URL."),
    token_env: str | None = typer.Option(
        None, "--token-env", help="With --server: the variable that holds the bearer token."
    ),
    command: list[str] = typer.Argument(..., metavar="CMD [ARGS]...", help="The program to start (after --)."),
) -> None:
    """Start CMD with secrets in its environment only (never argv, never disk); exit with CMD's code."""
    mappings = [parse_mapping(item) for item in secret]
    envs = [env for env, _n, _v in mappings]
    if len(set(envs)) != len(envs):
        raise UsageError("a variable is mapped twice", hint="give each ENV once")
    program = shutil.which(command[0])
    if program is None:
        raise UsageError(f"command not found: {command[0]}", hint="give a program on PATH or a path to one")
    if server is not None:
        if not token_env or not os.environ.get(token_env):
            raise UsageError("--server needs --token-env VAR with a bearer token in VAR")
        values = fetch_remote(server, os.environ[token_env], mappings)
    elif token_env is not None:
        raise UsageError("--token-env is only used with --server")
    else:
        values = fetch_local(mappings)
    env = child_environment(values, token_env)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(program, command, env)  # noqa: S606 - the user's own command, no shell
    except OSError as exc:
        raise RefusedError(f"cannot start {command[0]}: {exc.strerror}") from None


def register(app: typer.Typer) -> None:
    """Add ``run`` to ``app``."""
    app.command(
        "run",
        context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
    )(run)
