"""Bearer-token authentication with an in-process cache.

Looking a token up costs a database round trip; the cache keeps the resolved
:class:`Principal` (without per-request fields) for at most ``ttl`` seconds
(0.5 s by default, which also bounds how long an expiring token outlives its
expiry). It is emptied whenever the vault reports a state
change (``Vault.state_hooks``: a suspension, a key state change, here or on any
other node through the vault's watcher), so a suspended client is refused on
every node as soon as the change is seen, and within ``ttl`` in any case.
Tokens are kept only as SHA-256 digests, never in clear.
"""

from __future__ import annotations

import threading
import time

from keyguard.errors import PermissionDeniedError
from keyguard.vault.clients import ClientService
from keyguard.vault.principal import Principal
from keyguard.vault.service import hash_token

INVALID_TOKEN = "invalid or expired token"  # noqa: S105 - a message, not a secret


class TokenCache:
    """token digest → (principal, monotonic deadline)."""

    def __init__(self, clients: ClientService, ttl: float = 0.5, max_entries: int = 10_000) -> None:
        self._clients = clients
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()
        self._generation = 0

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

    def authenticate(
        self, token: str, source_ip: str | None, user_agent: str | None, request_id: str | None
    ) -> Principal:
        """Look ``token`` up (database) and cache it, or raise :class:`PermissionDeniedError`."""
        generation = self._generation
        base = self._clients.authenticate(token)
        # Expired tokens were refused by the lookup; the short TTL bounds the rest.
        deadline = time.monotonic() + self._ttl
        with self._lock:
            # A state change while we looked the token up: do not cache what may be stale.
            if generation == self._generation:
                if len(self._entries) >= self._max:
                    self._entries.clear()
                self._entries[hash_token(token)] = (base, deadline)
        return base.on_request(source_ip, user_agent, request_id)


def is_invalid_token(exc: PermissionDeniedError) -> bool:
    """True when the token itself is bad (401), not its client suspended (403)."""
    return exc.message == INVALID_TOKEN
