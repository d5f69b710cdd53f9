"""Request dependencies as ``Annotated`` aliases: the vault, the client service, the caller."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from keyguard.api.auth import TokenCache, is_invalid_token
from keyguard.api.errors import AuthenticationError
from keyguard.errors import PermissionDeniedError
from keyguard.vault.clients import ClientService
from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: Sequence[str]) -> tuple[Network, ...]:
    """Parse trusted-proxy addresses or CIDR ranges (``127.0.0.1``, ``10.0.0.0/8``)."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def _is_trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_ip(request: Request) -> str | None:
    """The caller's address; ``X-Forwarded-For`` is believed only from trusted proxies.

    The chain is read from the right: the first address that is not a trusted
    proxy is the client (addresses further left are the client's own claims).
    """
    peer = request.client.host if request.client else None
    trusted: tuple[Network, ...] = request.app.state.trusted_proxies
    return client_of(peer, request.headers.get("x-forwarded-for"), trusted)


def client_of(peer: str | None, forwarded: str | None, trusted: tuple[Network, ...]) -> str | None:
    """:func:`client_ip` from the connection's ``peer`` and the first ``X-Forwarded-For`` value (raw headers)."""
    if peer is None or not trusted or not _is_trusted(peer, trusted):
        return peer
    return _forwarded_client(peer, forwarded, trusted)


def _forwarded_client(peer: str, forwarded: str | None, trusted: tuple[Network, ...]) -> str:
    if not forwarded:
        return peer
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def request_id(request: Request) -> str:
    """The request id set by the middleware (from ``X-Request-Id`` or generated)."""
    return str(request.scope.get("keyguard.request_id", ""))


async def get_vault(request: Request) -> Vault:
    """The application's vault (async: a sync dependency would cost a thread hop)."""
    vault: Vault = request.app.state.vault
    return vault


async def get_clients(request: Request) -> ClientService:
    """The application's client service."""
    clients: ClientService = request.app.state.clients
    return clients


async def get_principal(request: Request) -> Principal:
    """The authenticated caller (bearer token); refusals are audited."""
    return await authenticate_request(request)


async def authenticate_request(request: Request, *, second_factor: bool = True) -> Principal:
    """The caller of ``request`` from its headers alone (no body is read); refusals are audited.

    Without ``second_factor`` an ``X-Keyguard-OTP`` header is left for the route
    (a TOTP code is accepted once only): the front door checks the bearer token
    before it reads a body, and the route checks the second factor as usual.
    """
    cache: TokenCache = request.app.state.token_cache
    source_ip = client_ip(request)
    user_agent = request.headers.get("user-agent")
    rid = request_id(request)
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        await _audit_refusal(request, source_ip, user_agent, rid, "no bearer token")
        raise AuthenticationError("authentication required", hint="send Authorization: Bearer <token>")
    bearer = token.strip()
    otp = request.headers.get("x-keyguard-otp") if second_factor else None
    if not otp:
        cached = cache.authenticate_cached(bearer, source_ip, user_agent, rid)
        if cached is not None:
            return cached
    try:
        if otp:  # a second factor is checked every time, never cached
            return await run_in_threadpool(cache.authenticate_otp, bearer, source_ip, user_agent, rid, otp)
        return await cache.authenticate_shared(bearer, source_ip, user_agent, rid)
    except PermissionDeniedError as exc:
        await _audit_refusal(request, source_ip, user_agent, rid, exc.message)
        if is_invalid_token(exc):
            raise AuthenticationError(exc.message, hint=exc.hint) from None
        raise


async def _audit_refusal(
    request: Request, source_ip: str | None, user_agent: str | None, rid: str, reason: str
) -> None:
    vault: Vault = request.app.state.vault
    anonymous = Principal(name="anonymous", role="none", source_ip=source_ip, user_agent=user_agent, request_id=rid)
    await run_in_threadpool(vault.record, anonymous, "auth", "denied", None, None, reason)


VaultDep = Annotated[Vault, Depends(get_vault)]
ClientsDep = Annotated[ClientService, Depends(get_clients)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
