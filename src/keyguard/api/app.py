"""``create_app(settings, vault)``: the FastAPI application of ``keyguard serve`` (SPEC §6)."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

import keyguard
from keyguard.api import errors, metrics_access, openapi, rejects
from keyguard.api.auth import TokenCache
from keyguard.api.deps import parse_networks
from keyguard.api.fastpath import CryptoFastPath
from keyguard.api.front import CachedCallerFront
from keyguard.api.gate import DEFAULT_MAX_BODY, BodyGate, load_max_body
from keyguard.api.metrics import RequestMiddleware
from keyguard.api.routes import audit, auth_token, clients, crypto, incidents, keys, meta, secrets
from keyguard.audit.push import CheckpointPusher, load_config
from keyguard.config import Settings
from keyguard.vault.clients import ClientService
from keyguard.vault.jwt_config import JwtConfig, load_jwt_config
from keyguard.vault.jwt_tokens import JwtService
from keyguard.vault.service import Vault

DESCRIPTION = (
    "The keyguard vault over HTTP. Authenticate with `Authorization: Bearer <token>` "
    "(`keyguard client token NAME`). Bytes travel as base64. A refused call answers 403 "
    'with `{"error", "reason"}` where the reason names the state (`version 1 is compromised`); '
    "a bad body 422; an unknown key 404; a tampered ciphertext or invalid signature 409."
)


SWITCH_INTERVAL = 0.0005  # seconds: how long a busy thread keeps the GIL from the others


class KeyguardAPI(FastAPI):
    """FastAPI with keyguard's front door outside Starlette's own middleware stack.

    Request ids and metrics wrap every request; the encrypt/decrypt fast lane
    answers its common case before routing, dependency injection and
    validation (which cost more CPU than the vault operation itself). Outermost,
    the front (:mod:`keyguard.api.front`) answers an encrypt/decrypt from a
    caller already in the token cache in one coroutine, with the same lane.
    """

    _front: ASGIApp | None = None
    max_body: int = DEFAULT_MAX_BODY

    def install_front(self) -> None:
        """Put the request-id/metrics middleware and the fast lane in front of the app."""
        lane = CryptoFastPath(super().__call__, api=self)
        gate = BodyGate(lane, self, self.max_body)
        self._front = CachedCallerFront(RequestMiddleware(gate), gate, lane, self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._front is None or scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        await self._front(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    vault: Vault | None = None,
    *,
    trusted_proxies: Sequence[str] = (),
    token_ttl: float = 0.5,
    watch: bool = True,
    schedule: bool = False,
    jwt_config: JwtConfig | None = None,
    metrics_token: str | None = None,
) -> FastAPI:
    """Build the API over ``vault`` (opened from ``settings`` when not given).

    ``trusted_proxies`` lists the addresses or CIDR ranges whose
    ``X-Forwarded-For`` is believed. With ``watch``, the vault's state watcher
    runs while the app is up, so changes made by other processes or nodes drop
    this node's caches (containment on every node). With ``schedule``, the
    scheduler expires leases and rotates due keys (on one node of the cluster).
    ``jwt_config`` defaults to ``[auth] jwt_*`` of keyguard.toml. ``metrics_token`` is
    accepted on ``/metrics`` besides those of ``[metrics]`` and
    ``KEYGUARD_METRICS_TOKEN`` (:mod:`keyguard.api.metrics_access`).
    """
    owned = vault is None
    if vault is None:
        from keyguard.runtime import open_vault

        vault = open_vault(settings)
    service = ClientService(vault)
    jwts = JwtService(service, jwt_config if jwt_config is not None else load_jwt_config(settings))
    token_cache = TokenCache(service, ttl=token_ttl, jwts=jwts)
    vault.state_hooks.append(token_cache.clear)

    pusher = _checkpoint_pusher(settings, vault) if watch else None
    scheduler = None
    if schedule:
        from keyguard.response.scheduler.service import build_scheduler

        scheduler = build_scheduler(settings or Settings.from_env(), vault, jwt_keyring=jwts.keyring)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if watch:
            # The watcher thread must get the GIL as soon as a change is announced, not after
            # the event loop's 5 ms time slice: that wait was most of containment across nodes.
            sys.setswitchinterval(SWITCH_INTERVAL)
            vault.start_watcher()
        if pusher is not None:
            pusher.start()
        if scheduler is not None:
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()
            if pusher is not None:
                pusher.stop()
            if owned:
                vault.close()

    app = KeyguardAPI(
        dependencies=[Depends(rejects.check_body_text), Depends(rejects.check_query)],
        title="keyguard",
        version=keyguard.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.vault = vault
    app.state.scheduler = scheduler
    app.state.clients = service
    app.state.token_cache = token_cache
    app.state.jwts = jwts
    app.state.trusted_proxies = parse_networks(trusted_proxies)
    config_file = (settings or Settings.from_env()).config_file
    app.state.metrics_access = metrics_access.load_access(config_file, metrics_token)
    app.max_body = load_max_body(config_file)
    errors.install(app)
    rejects.install(app)
    app.install_front()
    for module in (keys, crypto, clients, secrets, audit, incidents, meta, auth_token):
        app.include_router(module.router)
    from keyguard.web.routes import include as include_dashboard

    include_dashboard(app)
    openapi.install(app)
    return app


def _checkpoint_pusher(settings: Settings | None, vault: Vault) -> CheckpointPusher | None:
    """The periodic push of signed audit checkpoints, when keyguard.toml declares sinks."""
    config = load_config((settings or Settings.from_env()).config_file)
    if config is None or not config.sinks:
        return None
    return CheckpointPusher(vault.engine, vault.checkpoint_key, config, vault.clock.now)


def freeze_startup() -> None:
    """Move every object alive now (modules, the app, its routes and models) out of the collector's sight.

    A server process builds hundreds of thousands of long-lived objects before its
    first request; every full collection walked them all again, a pause that
    landed on whichever requests were in flight (the p99). Called once the app is
    built, just before serving.
    """
    gc.collect()
    gc.freeze()


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (one per worker process)."""
    proxies = os.environ.get("KEYGUARD_TRUSTED_PROXIES", "")
    app = create_app(Settings.from_env(), trusted_proxies=[p for p in proxies.split(",") if p.strip()],
                     schedule=os.environ.get("KEYGUARD_SCHEDULER", "on") != "off")
    freeze_startup()
    return app
