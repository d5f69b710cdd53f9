"""``keyguard creds issue CONNECTOR/role/ROLE --ttl 15m``: a database or cache user for one lease (SPEC §8)."""

from __future__ import annotations

import typer

from keyguard.cli import context
from keyguard.cli.lease import manager
from keyguard.cli.output import JsonOption, console, emit, local_time
from keyguard.clock import parse_span

creds_app = typer.Typer(help="Dynamic credentials: users that exist only for their lease.", no_args_is_help=True)


@creds_app.command("issue")
def issue(
    path: str = typer.Argument(..., help="CONNECTOR/role/ROLE, a [connectors.C.roles.R] table of keyguard.toml."),
    ttl: str | None = typer.Option(None, "--ttl", help="Time to live (s, m, h, d); default the role's default_ttl."),
    as_json: bool = JsonOption,
) -> None:
    """Create a user with the template's grants; its password is printed once and stored nowhere."""
    span = parse_span(ttl, "ttl") if ttl is not None else None
    actor = context.authorize("lease.issue").actor
    issued = manager().issue(path, span, actor)
    document = issued.to_dict()
    emit(document, as_json, lambda: console.print(
        f"lease    {issued.lease_id}\nusername {issued.username}\npassword {document['password']}\n"
        f"expires  {local_time(issued.expires_at)}", highlight=False))


def register(app: typer.Typer) -> None:
    """Add ``creds`` to ``app``."""
    app.add_typer(creds_app, name="creds")
