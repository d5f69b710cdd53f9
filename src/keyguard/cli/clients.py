"""``keyguard client …``: consumers of keys, their grants and tokens."""

from __future__ import annotations

from datetime import timedelta

import typer
from rich.table import Table

from keyguard.cli import context
from keyguard.cli.output import MAX_COUNT, JsonOption, absolute, console, emit
from keyguard.config import Settings
from keyguard.vault.clients import ClientService, ClientView
from keyguard.vault.principal import parse_grants

client_app = typer.Typer(help="Clients (consumers of keys), grants and tokens.", no_args_is_help=True)


def _render(clients: list[ClientView]) -> None:
    table = Table("name", "role", "status", "grants", "references")
    for c in clients:
        table.add_row(c.name, c.role, c.status, ", ".join(c.grants) or "-", ", ".join(c.references) or "-")
    console.print(table)


@client_app.command("create")
def create(
    name: str = typer.Argument(...),
    role: str = typer.Option("service", "--role", help="admin, operator, auditor or service."),
    grant: list[str] = typer.Option([], "--grant", help="KEY:OP[,OP…] (repeatable; KEY may be a glob)."),
    reference: list[str] = typer.Option(
        [], "--reference", help="A config file, or secret:NAME, where this client reads key references (repeatable)."
    ),
    description: str = typer.Option("", "--description"),
    as_json: bool = JsonOption,
) -> None:
    """Register a consumer with least-privilege grants."""
    vault = context.vault()
    references = [r if r.startswith("secret:") else absolute(r) for r in reference]
    view = ClientService(vault).create(
        context.principal(vault), name, role, parse_grants(grant), references, description
    )
    emit(view.to_dict(), as_json, lambda: _render([view]))


@client_app.command("list")
def list_clients(as_json: bool = JsonOption) -> None:
    """List clients."""
    vault = context.vault()
    views = ClientService(vault).list(context.principal(vault))
    emit([v.to_dict() for v in views], as_json, lambda: _render(views))


def _status(name: str, status: str, reason: str | None, as_json: bool) -> None:
    vault = context.vault()
    view = ClientService(vault).set_status(context.principal(vault), name, status, reason)
    emit(view.to_dict(), as_json, lambda: _render([view]))


@client_app.command("suspend")
def suspend(
    name: str = typer.Argument(...),
    reason: str | None = typer.Option(None, "--reason"),
    as_json: bool = JsonOption,
) -> None:
    """Suspend a client: every token it holds is refused at once."""
    _status(name, "suspended", reason, as_json)


@client_app.command("resume")
def resume(
    name: str = typer.Argument(...),
    reason: str | None = typer.Option(None, "--reason"),
    as_json: bool = JsonOption,
) -> None:
    """Resume a suspended client."""
    _status(name, "active", reason, as_json)


@client_app.command("token")
def token(
    name: str = typer.Argument(...),
    ttl: int | None = typer.Option(
        None,
        "--ttl",
        min=1,
        max=MAX_COUNT,
        help="Lifetime in seconds (default 1 h, at most [auth] max_token_ttl; --jwt: 15 min, [auth] jwt_ttl).",
    ),
    jwt: bool = typer.Option(
        False, "--jwt", help="A signed JWT access token (at most [auth] jwt_ttl, 15 min) instead of an opaque one."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Issue a short-lived bearer token for the API (shown once)."""
    vault = context.vault()
    lifetime = timedelta(seconds=ttl) if ttl is not None else None
    if jwt:
        from keyguard.vault.jwt_config import load_jwt_config
        from keyguard.vault.jwt_tokens import JwtService

        clients = ClientService(vault)
        issued = JwtService(clients, load_jwt_config(Settings.from_env())).issue(
            context.principal(vault), name, lifetime
        )
        value, expires = issued.token, issued.expires_at
    else:
        value, expires = ClientService(vault).issue_token(context.principal(vault), name, lifetime)
    emit(
        {"token": value, "expires_at": expires},
        as_json,
        lambda: console.print(f"{value}\nexpires {expires.isoformat()}"),
    )


@client_app.command("mfa")
def mfa(name: str = typer.Argument(...), as_json: bool = JsonOption) -> None:
    """Enrol a TOTP second factor for a client (the secret is shown once)."""
    vault = context.vault()
    secret, uri = ClientService(vault).enroll_mfa(context.principal(vault), name)
    emit(
        {"client": name, "secret": secret, "otpauth_uri": uri},
        as_json,
        lambda: console.print(f"TOTP secret for {name} (shown once): {secret}\n{uri}"),
    )


@client_app.command("revoke")
def revoke(name: str = typer.Argument(...), as_json: bool = JsonOption) -> None:
    """Revoke every token of a client."""
    vault = context.vault()
    count = ClientService(vault).revoke_tokens(context.principal(vault), name)
    emit(
        {"client": name, "revoked": count},
        as_json,
        lambda: console.print(f"revoked {count} tokens of {name}"),
    )


def register(app: typer.Typer) -> None:
    """Add ``client`` to ``app``."""
    app.add_typer(client_app, name="client")
