"""``/v1/clients``: create, list, show, suspend, resume, token, revoke."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, status

from keyguard.api import schemas
from keyguard.api.convert import client_out
from keyguard.api.deps import ClientsDep, PrincipalDep
from keyguard.vault.principal import parse_grants

router = APIRouter(prefix="/v1/clients", tags=["clients"])


def _forget_tokens(request: Request) -> None:
    request.app.state.token_cache.clear()


@router.post("", status_code=status.HTTP_201_CREATED, name="client.create")
def create_client(body: schemas.ClientCreate, clients: ClientsDep, principal: PrincipalDep) -> schemas.ClientOut:
    """Register a consumer with a role and grants (``keyguard client create``)."""
    view = clients.create(
        principal,
        body.name,
        body.role,
        parse_grants(body.grants),
        body.references,
        body.description,
    )
    return client_out(view)


@router.get("", name="client.list")
def list_clients(clients: ClientsDep, principal: PrincipalDep) -> list[schemas.ClientOut]:
    """Every client (``keyguard client list``)."""
    with clients.vault.audited(principal, "client.list", None):
        views = clients.list(principal)
    return [client_out(view) for view in views]


@router.get("/{client}", name="client.read")
def show_client(client: schemas.ClientName, clients: ClientsDep, principal: PrincipalDep) -> schemas.ClientOut:
    """One client."""
    with clients.vault.audited(principal, "client.read", None) as ctx:
        principal.require("client.read")
        view = clients.get(client)
        ctx["reason"] = f"client {client}"
    return client_out(view)


@router.post("/{client}/suspend", name="client.suspend")
def suspend_client(
    client: schemas.ClientName,
    request: Request,
    clients: ClientsDep,
    principal: PrincipalDep,
    body: schemas.ClientStatusIn | None = None,
) -> schemas.ClientOut:
    """Suspend a client: every token it holds is refused at once, on every node."""
    view = clients.set_status(principal, client, "suspended", body.reason if body else None)
    _forget_tokens(request)
    return client_out(view)


@router.post("/{client}/resume", name="client.resume")
def resume_client(
    client: schemas.ClientName,
    request: Request,
    clients: ClientsDep,
    principal: PrincipalDep,
    body: schemas.ClientStatusIn | None = None,
) -> schemas.ClientOut:
    """Resume a suspended client."""
    view = clients.set_status(principal, client, "active", body.reason if body else None)
    _forget_tokens(request)
    return client_out(view)


@router.post("/{client}/token", status_code=status.HTTP_201_CREATED, name="client.token")
def issue_token(
    client: schemas.ClientName, clients: ClientsDep, principal: PrincipalDep, body: schemas.TokenIn | None = None
) -> schemas.TokenOut:
    """A new bearer token for the client, shown once (``keyguard client token``)."""
    ttl = timedelta(seconds=body.ttl_seconds) if body and body.ttl_seconds else None
    token, expires_at = clients.issue_token(principal, client, ttl)
    return schemas.TokenOut(token=token, expires_at=expires_at)


@router.post("/{client}/revoke", name="client.revoke")
def revoke_tokens(
    client: schemas.ClientName, request: Request, clients: ClientsDep, principal: PrincipalDep
) -> schemas.RevokeOut:
    """Revoke every token of the client."""
    count = clients.revoke_tokens(principal, client)
    _forget_tokens(request)
    return schemas.RevokeOut(revoked=count)
