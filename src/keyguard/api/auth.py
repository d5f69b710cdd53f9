"""Bearer-token authentication with an in-process cache: opaque ``kgt_`` tokens and JWTs alike.

Looking a token up costs a database round trip (and, for a JWT, a signature
check); the cache keeps the resolved :class:`Principal` (without per-request
fields) for at most ``ttl`` seconds (0.5 s by default, which also bounds how
long an expiring opaque token outlives its expiry; a JWT is never cached past
its ``exp``). It is emptied whenever the vault reports a state
change (``Vault.state_hooks``: a suspension, a key state change, a signing-key
rotation, here or on any other node through the vault's watcher), so a
suspended client is refused on every node as soon as the change is seen, and
within ``ttl`` in any case. Tokens are kept only as SHA-256 digests, never in clear.

:meth:`TokenCache.verify_bearer` is the one entry point for any caller (the
routes' dependency, the encrypt/decrypt fast lane, the dashboard).
"""

from __future__ import annotations

import asyncio
import threading
import time

from starlette.concurrency import run_in_threadpool

from keyguard.errors import PermissionDeniedError
from keyguard.vault.clients import ClientService
from keyguard.vault.jwt_tokens import JwtService, TokenRejected, looks_like_jwt
from keyguard.vault.principal import Principal
from keyguard.vault.service import hash_token

INVALID_TOKEN = "invalid or expired token"  # noqa: S105 - a message, not a secret


class TokenCache:
    """token digest → (principal, monotonic deadline)."""

    def __init__(
        self,
        clients: ClientService,
        ttl: float = 0.5,
        max_entries: int = 10_000,
        jwts: JwtService | None = None,
    ) -> None:
        self._clients = clients
        self._jwts = jwts
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()
        self._generation = 0
        self._flights: dict[str, asyncio.Future[Principal]] = {}  # token digest -> lookup in progress

    def clear(self) -> None:
        """Forget every cached principal (called on any state change)."""
        with self._lock:
            self._entries.clear()
            self._generation += 1

    def authenticate_cached(
        self, token: str, source_ip: str | None, user_agent: str | None, request_id: str | None
    ) -> Principal | None:
        """The cached principal of ``token`` for this request, or None on a miss (no I/O)."""
        entry = self._entries.get(hash_token(token))
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0].on_request(source_ip, user_agent, request_id)

    def _lookup(self, token: str) -> tuple[Principal, float]:
        """The principal of ``token`` and until when (monotonic) it may be cached."""
        if self._jwts is not None and looks_like_jwt(token):
            principal, expires = self._jwts.verify(token)
            remaining = (expires - self._jwts.vault.clock.now()).total_seconds()
            return principal, time.monotonic() + max(0.0, min(self._ttl, remaining))
        # Expired opaque tokens were refused by the lookup; the short TTL bounds the rest.
        return self._clients.authenticate(token), time.monotonic() + self._ttl

    def authenticate(
        self, token: str, source_ip: str | None, user_agent: str | None, request_id: str | None
    ) -> Principal:
        """Look ``token`` up (database) and cache it, or raise :class:`PermissionDeniedError`."""
        return self._fetch(token).on_request(source_ip, user_agent, request_id)

    def _fetch(self, token: str) -> Principal:
        """The principal of ``token`` without per-request fields, looked up and cached."""
        generation = self._generation
        base, deadline = self._lookup(token)
        with self._lock:
            # A state change while we looked the token up: do not cache what may be stale.
            if generation == self._generation:
                if len(self._entries) >= self._max:
                    self._entries.clear()
                self._entries[hash_token(token)] = (base, deadline)
        return base

    async def authenticate_shared(
        self, token: str, source_ip: str | None, user_agent: str | None, request_id: str | None
    ) -> Principal:
        """:meth:`authenticate` in the threadpool, one lookup per token at a time on this loop.

        When a cached token expires, every request in flight with it misses at
        once: they wait for the first one's lookup instead of each taking a
        thread and a database read (the tail latency of every refresh). Each
        caller still gets its own request fields, and a refusal raises for each.
        """
        digest = hash_token(token)
        loop = asyncio.get_running_loop()
        flight = self._flights.get(digest)
        if flight is not None and flight.get_loop() is loop:
            try:
                base = await asyncio.shield(flight)
            except asyncio.CancelledError:
                if not flight.cancelled():
                    raise  # this caller was cancelled
                base = await run_in_threadpool(self._fetch, token)  # the first caller went away
            return base.on_request(source_ip, user_agent, request_id)
        flight = loop.create_future()
        self._flights[digest] = flight
        try:
            base = await run_in_threadpool(self._fetch, token)
        except Exception as exc:
            flight.set_exception(exc)
            flight.exception()  # retrieved: nobody else may be waiting
            raise
        except BaseException:
            flight.cancel()
            raise
        else:
            flight.set_result(base)
        finally:
            if self._flights.get(digest) is flight:
                del self._flights[digest]
        return base.on_request(source_ip, user_agent, request_id)

    def authenticate_otp(
        self, token: str, source_ip: str | None, user_agent: str | None, request_id: str | None, otp: str
    ) -> Principal:
        """The principal with a second factor: the token and the code are checked every time, never cached."""
        if self._jwts is not None and looks_like_jwt(token):
            return self._jwts.verify(token, otp, source_ip, user_agent, request_id)[0]
        return self._clients.authenticate(token, source_ip, user_agent, request_id, otp)

    def verify_bearer(
        self,
        token: str,
        source_ip: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
        otp: str | None = None,
    ) -> Principal:
        """The principal of an opaque token or a JWT (cached unless ``otp``); refusals raise, unaudited."""
        if otp:
            return self.authenticate_otp(token, source_ip, user_agent, request_id, otp)
        cached = self.authenticate_cached(token, source_ip, user_agent, request_id)
        return cached if cached is not None else self.authenticate(token, source_ip, user_agent, request_id)


def is_invalid_token(exc: PermissionDeniedError) -> bool:
    """True when the token itself is bad (401), not its client suspended (403)."""
    return isinstance(exc, TokenRejected) or exc.message == INVALID_TOKEN
