"""``keyguard lease …``: the leases of dynamic credentials (SPEC §8): list, renew, revoke."""

from __future__ import annotations

import typer
from rich.table import Table

from keyguard.cli import context
from keyguard.cli.output import JsonOption, console, emit, local_time
from keyguard.clock import parse_span
from keyguard.config import Settings
from keyguard.connectors.config import load_connectors
from keyguard.connectors.leases import LeaseManager
from keyguard.errors import UsageError

lease_app = typer.Typer(help="Leases of dynamic credentials: list, renew, revoke.", no_args_is_help=True)


def manager() -> LeaseManager:
    """Leases over the connectors of ``$KEYGUARD_HOME/keyguard.toml``, audited in the vault's log."""
    vault = context.vault()
    return LeaseManager(vault.engine, vault.audit, load_connectors(Settings.from_env().config_file),
                        clock=vault.clock)


def _table(leases: list[dict[str, object]]) -> None:
    table = Table("lease", "user", "state", "issued", "expires", "ended")
    for lease in leases:
        table.add_row(str(lease["lease_id"]), str(lease["username"]), str(lease["state"]),
                      local_time(lease["issued_at"]), local_time(lease["expires_at"]),  # type: ignore[arg-type]
                      local_time(lease["revoked_at"]) if lease["revoked_at"] else "")  # type: ignore[arg-type]
    console.print(table)


@lease_app.command("list")
def list_leases(
    prefix: str | None = typer.Option(None, "--prefix", help="Only leases under CONNECTOR/role/ROLE."),
    all_states: bool = typer.Option(False, "--all", help="Ended leases too (revoked, expired, failed)."),
    as_json: bool = JsonOption,
) -> None:
    """Live leases (pending or active), oldest first."""
    context.authorize("lease.read")
    leases = manager().list_leases(prefix, all_states=all_states)
    emit(leases, as_json, lambda: _table(leases) if leases else console.print("no leases"))


@lease_app.command("renew")
def renew(
    lease_id: str = typer.Argument(..., help="The lease id (from creds issue or lease list)."),
    ttl: str | None = typer.Option(None, "--ttl", help="New time to live from now (s, m, h, d); capped at max_ttl."),
    as_json: bool = JsonOption,
) -> None:
    """Extend a lease (never past the role's max_ttl from issue)."""
    span = parse_span(ttl, "ttl") if ttl is not None else None
    actor = context.authorize("lease.renew").actor
    lease = manager().renew(lease_id, span, actor)
    emit(lease, as_json, lambda: console.print(f"{lease_id} renewed until {local_time(lease['expires_at'])}"))


@lease_app.command("revoke")
def revoke(
    lease_id: str | None = typer.Argument(None, help="The lease id."),
    prefix: str | None = typer.Option(None, "--prefix", help="Revoke every live lease under CONNECTOR/role/ROLE."),
    as_json: bool = JsonOption,
) -> None:
    """Drop the user of a lease (or of every lease under --prefix) and end its sessions now."""
    if (lease_id is None) == (prefix is None):
        raise UsageError("give a lease id or --prefix", hint="a LEASE id, or --prefix pg/role/readonly")
    actor = context.authorize("lease.revoke").actor
    leases = manager()
    if prefix is not None:
        done = leases.revoke_prefix(prefix, actor)
        emit({"prefix": prefix, "revoked": done}, as_json,
             lambda: console.print(f"{len(done)} lease(s) under {prefix} revoked"))
        return
    assert lease_id is not None
    lease = leases.revoke(lease_id, actor)
    emit(lease, as_json, lambda: console.print(f"{lease_id}: {lease['state']}, user {lease['username']} dropped"))


def register(app: typer.Typer) -> None:
    """Add ``lease`` to ``app``."""
    app.add_typer(lease_app, name="lease")
