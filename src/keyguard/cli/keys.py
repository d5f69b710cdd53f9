"""``keyguard key …``: create, import, list, show, rotate, state changes, export-public."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from keyguard.cli import context
from keyguard.cli.output import MAX_VERSION, JsonOption, YesOption, confirm, console, emit, local_time
from keyguard.errors import UsageError
from keyguard.vault.lifecycle import VersionState
from keyguard.vault.service import KeyInfo

key_app = typer.Typer(help="Manage keys and their versions.", no_args_is_help=True)

VersionOption = typer.Option(..., "--version", "-v", min=1, max=MAX_VERSION, help="The key version (1..n).")


def _show(info: KeyInfo) -> None:
    console.print(
        f"[bold]{info.name}[/bold]  purpose={info.purpose} tier={info.tier} owner={info.owner or '-'} "
        f"rotation={info.rotation_days}d min_decryption_version={info.min_decryption_version}"
    )
    table = Table("version", "algorithm", "state", "fingerprint", "origin", "created", "last used")
    for v in sorted(info.versions.values(), key=lambda v: v.version):
        style = {
            "compromised": "red",
            "destroyed": "dim",
            "disabled": "yellow",
            "active": "green",
        }.get(v.state, "")
        table.add_row(
            str(v.version),
            v.algorithm,
            f"[{style}]{v.state}[/{style}]" if style else v.state,
            v.fingerprint,
            v.origin,
            local_time(v.created_at),
            local_time(v.last_used_at),
        )
    console.print(table)


@key_app.command("create")
def create(
    name: str = typer.Argument(..., help="Key name."),
    purpose: str = typer.Option("encrypt", "--purpose", help="encrypt, sign or mac."),
    algorithm: str | None = typer.Option(None, "--algorithm", "-a", help="Algorithm (default per purpose)."),
    tier: str = typer.Option("medium", "--tier", help="high, medium or low."),
    owner: str = typer.Option("", "--owner", help="Owning team or person."),
    tag: list[str] = typer.Option([], "--tag", help="A tag (repeatable)."),
    rotation_days: int = typer.Option(90, "--rotation-days", min=1, max=36500, help="Rotation period in days."),
    as_json: bool = JsonOption,
) -> None:
    """Create a key with version 1 active."""
    vault = context.vault()
    info = vault.create_key(context.principal(vault), name, purpose, algorithm, tier, owner, list(tag), rotation_days)
    emit(info.to_dict(), as_json, lambda: _show(info))


@key_app.command("import")
def import_key(
    name: str = typer.Argument(..., help="Key name (a new version is added when it exists)."),
    source: Path = typer.Option(..., "--in", help="PEM, DER or JWK private key; raw, hex or base64 secret key."),
    purpose: str = typer.Option(..., "--purpose", help="encrypt, sign or mac."),
    tier: str = typer.Option("medium", "--tier", help="high, medium or low."),
    algorithm: str | None = typer.Option(
        None,
        "--algorithm",
        "-a",
        help="For secret keys: aes256-gcm, chacha20-poly1305, hmac-sha256.",
    ),
    owner: str = typer.Option("", "--owner"),
    as_json: bool = JsonOption,
) -> None:
    """Bring an existing key under management."""
    vault = context.vault()
    info = vault.import_key(context.principal(vault), name, context.read_input(source), purpose, tier, algorithm, owner)
    emit(info.to_dict(), as_json, lambda: _show(info))


@key_app.command("list")
def list_keys(as_json: bool = JsonOption) -> None:
    """List keys."""
    vault = context.vault()
    keys = vault.list_keys(context.principal(vault))

    def human() -> None:
        table = Table("name", "purpose", "tier", "algorithm", "active", "versions", "owner", "rotated")
        for k in keys:
            d = k.to_dict()
            table.add_row(
                k.name,
                k.purpose,
                k.tier,
                d["algorithm"],
                str(d["active_version"] or "-"),
                ",".join(f"{v.version}:{v.state}" for v in k.versions.values()),
                k.owner or "-",
                local_time(k.rotated_at),
            )
        console.print(table)

    emit([k.to_dict() for k in keys], as_json, human)


@key_app.command("show")
def show(name: str = typer.Argument(...), as_json: bool = JsonOption) -> None:
    """Show one key and its versions."""
    vault = context.vault()
    context.principal(vault).require("key.read", name)
    info = vault.key_info(name)
    emit(info.to_dict(), as_json, lambda: _show(info))


@key_app.command("rotate")
def rotate(
    name: str = typer.Argument(...),
    algorithm: str | None = typer.Option(None, "--algorithm", "-a", help="Another algorithm of the same purpose."),
    as_json: bool = JsonOption,
) -> None:
    """Add a new active version; older versions still decrypt / verify."""
    vault = context.vault()
    info = vault.rotate(context.principal(vault), name, algorithm)
    emit(info.to_dict(), as_json, lambda: _show(info))


def _state_command(target: VersionState, irreversible: bool, help_text: str) -> None:
    def command(
        name: str = typer.Argument(...),
        version: int = VersionOption,
        reason: str | None = typer.Option(None, "--reason", help="Why (recorded in the audit log)."),
        yes: bool = YesOption,
        as_json: bool = JsonOption,
    ) -> None:
        if irreversible:
            confirm(f"Mark {name} version {version} {target.value}? This cannot be undone.", yes)
        vault = context.vault()
        info = vault.set_state(context.principal(vault), name, version, target.value, reason)
        emit(info.to_dict(), as_json, lambda: _show(info))

    command.__doc__ = help_text
    verb = {
        "disabled": "disable",
        "enabled": "enable",
        "compromised": "compromise",
        "destroyed": "destroy",
    }[target.value]
    key_app.command(verb)(command)


_state_command(VersionState.DISABLED, False, "Block a version (reversible).")
_state_command(VersionState.ENABLED, False, "Re-enable a disabled version.")
_state_command(VersionState.COMPROMISED, True, "Mark a version compromised: blocked forever, a tripwire.")
_state_command(VersionState.DESTROYED, True, "Erase a version's material (metadata and audit stay).")


@key_app.command("config")
def config(
    name: str = typer.Argument(...),
    min_decryption_version: int = typer.Option(
        ..., "--min-decryption-version", min=1, max=MAX_VERSION, help="Refuse older versions."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Change a key's settings."""
    vault = context.vault()
    info = vault.set_min_decryption_version(context.principal(vault), name, min_decryption_version)
    emit(info.to_dict(), as_json, lambda: _show(info))


@key_app.command("export-public")
def export_public(
    name: str = typer.Argument(...),
    version: int | None = typer.Option(None, "--version", "-v", min=1, max=MAX_VERSION),
    fmt: str = typer.Option("pem", "--format", help="pem or jwk."),
    out: Path | None = typer.Option(None, "--out"),
) -> None:
    """Export the public key of an asymmetric key version (PEM or JWK)."""
    from keyguard.crypto.publickeys import to_jwk, to_pem

    vault = context.vault()
    spki, n, _algorithm = vault.public_key(context.principal(vault), name, version)
    if fmt == "pem":
        data = to_pem(spki)
    elif fmt == "jwk":
        data = (json.dumps(to_jwk(spki, kid=f"{name}:{n}"), indent=2) + "\n").encode()
    else:
        raise UsageError(f"unknown format {fmt!r}", hint="pem or jwk")
    context.write_output(data, out, 0o644)


def register(app: typer.Typer) -> None:
    """Add ``key`` to ``app``."""
    app.add_typer(key_app, name="key")
