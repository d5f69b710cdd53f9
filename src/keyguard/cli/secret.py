"""``keyguard secret …``: versioned secrets (put, get, list, rotate, destroy, readers).

Values come on stdin, never in argv (a process list or a shell history would
show them); ``get`` writes the value to stdout (or ``--out FILE``, mode 0600).
A single trailing newline of the input is dropped (``echo pw | keyguard secret
put db``) unless ``--raw`` is given.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import typer
from rich.table import Table

from keyguard.cli import context
from keyguard.cli.output import MAX_VERSION, JsonOption, YesOption, confirm, console, emit, local_time
from keyguard.clock import parse_time
from keyguard.vault.principal import Principal
from keyguard.vault.secrets import SecretInfo, SecretStore, audit_key, may, readers_since, require

secret_app = typer.Typer(help="Versioned secrets: values delivered to services at start-up.", no_args_is_help=True)

RawOption = typer.Option(False, "--raw", help="Keep the input exactly (do not drop one trailing newline).")


def _read_value(raw: bool) -> bytes:
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("secret value: ").encode("utf-8")
    value = sys.stdin.buffer.read()
    if not raw:
        if value.endswith(b"\r\n"):
            value = value[:-2]
        elif value.endswith(b"\n"):
            value = value[:-1]
    return value


def _show(info: SecretInfo) -> None:
    table = Table("version", "state", "origin", "created by", "created", "destroyed", title=info.name)
    for v in info.versions:
        style = "dim" if v["state"] == "destroyed" else ""
        state = f"[{style}]{v['state']}[/{style}]" if style else v["state"]
        table.add_row(
            str(v["version"]),
            state,
            v["origin"],
            v["created_by"],
            local_time(v["created_at"]),
            local_time(v["destroyed_at"]),
        )
    console.print(table)


def _store() -> tuple[SecretStore, Principal]:
    vault = context.vault()
    return SecretStore(vault), context.principal(vault)


@secret_app.command("put")
def put(name: str = typer.Argument(...), raw: bool = RawOption, as_json: bool = JsonOption) -> None:
    """Write a new version of NAME (created when new); the value is read from stdin."""
    value = _read_value(raw)
    store, caller = _store()
    version = store.put(caller, name, value)
    emit({"name": name, "version": version}, as_json, lambda: console.print(f"{name}: version {version} written"))


@secret_app.command("get")
def get(
    name: str = typer.Argument(...),
    version: int | None = typer.Option(None, "--version", "-v", min=1, max=MAX_VERSION, help="A version (latest)."),
    out: Path | None = typer.Option(None, "--out", help="Write the value to FILE (0600) instead of stdout."),
    as_json: bool = JsonOption,
) -> None:
    """Print the value of NAME (audited with the caller)."""
    store, caller = _store()
    found = store.get(caller, name, version)
    if as_json:
        from keyguard.cli.output import print_json

        print_json(
            {
                "name": found.name,
                "version": found.version,
                "value_b64": base64.b64encode(found.value).decode("ascii"),
                "created_at": found.created_at,
            }
        )
        return
    context.write_output(found.value, out)


@secret_app.command("list")
def list_secrets(as_json: bool = JsonOption) -> None:
    """List secrets and their versions (no values)."""
    store, caller = _store()
    infos = store.list(caller)

    def human() -> None:
        table = Table("name", "latest", "versions", "updated")
        for info in infos:
            table.add_row(
                info.name,
                str(info.latest),
                ",".join(f"{v['version']}:{v['state']}" for v in info.versions),
                local_time(info.updated_at),
            )
        console.print(table)

    emit([i.to_dict() for i in infos], as_json, human)


@secret_app.command("show")
def show(name: str = typer.Argument(...), as_json: bool = JsonOption) -> None:
    """Show one secret's versions (no values)."""
    store, caller = _store()
    if not (may(caller, "list") or may(caller, "read", name)):
        require(caller, "read", name)
    info = store.info(name)
    emit(info.to_dict(), as_json, lambda: _show(info))


@secret_app.command("rotate")
def rotate(
    name: str = typer.Argument(...),
    generate: bool = typer.Option(False, "--generate", help="A random 256-bit value instead of stdin."),
    show_value: bool = typer.Option(False, "--show", help="With --generate: print the new value."),
    raw: bool = RawOption,
    as_json: bool = JsonOption,
) -> None:
    """Write a new version of an existing secret (stdin, or --generate)."""
    value = None if generate else _read_value(raw)
    store, caller = _store()
    version, generated = store.rotate(caller, name, value)
    doc: dict[str, object] = {"name": name, "version": version, "generated": generated is not None}
    if generated is not None and show_value:
        doc["value"] = generated.decode("ascii")

    def human() -> None:
        console.print(f"{name}: version {version} written" + (" (generated)" if generated else ""))
        if generated is not None and show_value:
            sys.stdout.write(generated.decode("ascii") + "\n")

    emit(doc, as_json, human)


@secret_app.command("destroy")
def destroy(
    name: str = typer.Argument(...),
    version: int = typer.Option(..., "--version", "-v", min=1, max=MAX_VERSION, help="The version to erase."),
    yes: bool = YesOption,
    as_json: bool = JsonOption,
) -> None:
    """Erase one version's value for good (metadata and audit stay)."""
    confirm(f"Destroy {name} version {version}? This cannot be undone.", yes)
    store, caller = _store()
    info = store.destroy(caller, name, version)
    emit(info.to_dict(), as_json, lambda: _show(info))


@secret_app.command("readers")
def readers(
    name: str = typer.Argument(...),
    since: str | None = typer.Option(None, "--since", help="RFC 3339 or -2h style (default: all time)."),
    as_json: bool = JsonOption,
) -> None:
    """Who read NAME (since a time): the assessment of a leaked secret."""
    vault = context.vault()
    context.principal(vault).require("audit.read")
    found = readers_since(vault.engine, name, parse_time(since) if since else None)

    def human() -> None:
        table = Table("actor", "reads", "versions", "source", "first", "last", title=f"readers of {name}")
        for r in found:
            table.add_row(
                r.actor,
                str(r.reads),
                ",".join(map(str, r.versions)),
                ",".join(r.source_ips) or "-",
                local_time(r.first),
                local_time(r.last),
            )
        console.print(table)

    emit([r.to_dict() for r in found], as_json, human)


@secret_app.command("assess")
def assess_secret(
    name: str = typer.Argument(...),
    exposed_at: str = typer.Option(..., "--exposed-at", help="When it leaked: RFC 3339 or -2h style."),
    as_json: bool = JsonOption,
) -> None:
    """Assess a leaked secret: who read it since the exposure, and the use against the baseline."""
    from keyguard.assess.engine import assess

    vault = context.vault()
    context.principal(vault).require("audit.read")
    store = SecretStore(vault)
    store.info(name)  # NotFoundError for an unknown secret
    since = parse_time(exposed_at)
    found = readers_since(vault.engine, name, since)
    result = assess(vault.engine, audit_key(name), since, now=vault.clock.now(), tier="high")
    doc = {"secret": name, "exposed_at": since, "readers": [r.to_dict() for r in found], "assessment": result.to_dict()}

    def human() -> None:
        console.print(f"[bold]{name}[/bold]: risk {result.grade}, {len(found)} readers since {local_time(since)}")
        for factor in result.factors:
            console.print(f"  - {factor.en}")
        table = Table("actor", "reads", "versions", "source", "last")
        for r in found:
            table.add_row(r.actor, str(r.reads), ",".join(map(str, r.versions)), ",".join(r.source_ips) or "-",
                          local_time(r.last))
        console.print(table)

    emit(doc, as_json, human)
    if found:
        raise typer.Exit(1)  # someone holds the leaked value: rotate it and restart its readers


def register(app: typer.Typer) -> None:
    """Add ``secret`` to ``app``."""
    app.add_typer(secret_app, name="secret")
