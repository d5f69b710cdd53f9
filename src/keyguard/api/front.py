"""The outermost door: an encrypt/decrypt from a cached caller is answered in one coroutine.

The usual request — ``POST /v1/keys/{name}/encrypt`` or ``…/decrypt`` with a
bearer token already in the token cache, a declared ``Content-Length`` within
the body cap and no second factor — used to pass three middlewares (request id
and metrics, the body gate, the fast lane), each with its own closures, header
walks and a Starlette ``Request``. Here one walk over the raw ASGI headers
finds everything, and the fast lane's own answer
(:meth:`~keyguard.api.fastpath.CryptoFastPath.answer`) goes out with the
request id and the metrics the middlewares would have added.

Anything else is handed to that chain untouched: before the body is read, as it
arrived; after (the lane passed: a body the routes must judge), with the body
replayed and the lane told not to look again. A request answered here is
answered, audited and counted exactly as the chain would.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyguard.api.deps import client_of
from keyguard.api.fastpath import LANE_TRIED, PATH, CryptoFastPath, replaying
from keyguard.api.gate import PRINCIPAL, BodyGate, Disconnected, read_body
from keyguard.api.metrics import REQUEST_ID, RequestMiddleware, new_request_id


def caller_headers(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, int, str | None, str, str | None]:
    """(authorization, content length, user agent, sane request id or "", X-Forwarded-For) in one walk.

    The first of a repeated header counts, as with Starlette's ``Headers.get``. An
    ``X-Keyguard-OTP`` header blanks the authorization (the routes check second
    factors); a length of -1 is missing, -2 unreadable.
    """
    authorization = user_agent = rid = forwarded = None
    length = -1
    for name, value in headers:
        if name == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif name == b"content-length":
            if length == -1:
                length = int(value) if value.isdigit() else -2
        elif name == b"user-agent":
            if user_agent is None:
                user_agent = value.decode("latin-1")
        elif name == b"x-request-id":
            if rid is None:
                text = value.decode("latin-1")
                rid = text if REQUEST_ID.match(text) else ""
        elif name == b"x-forwarded-for":
            if forwarded is None:
                forwarded = value.decode("latin-1")
        elif name == b"x-keyguard-otp":
            authorization = ""
    return authorization, length, user_agent, rid or "", forwarded


class CachedCallerFront:
    """Pure ASGI app in front of the request-id/metrics middleware (``chain``)."""

    def __init__(self, chain: ASGIApp, gate: BodyGate, lane: CryptoFastPath, api: Any) -> None:
        self.chain = chain
        self.gate = gate
        self.lane = lane
        self.state = api.state
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = PATH.match(scope["path"]) if scope["method"] == "POST" else None
        if match is None:
            await self.chain(scope, receive, send)
            return
        authorization, length, user_agent, rid, forwarded = caller_headers(scope["headers"])
        rid = rid or new_request_id()
        scope["keyguard.request_id"] = rid
        scheme, _, token = (authorization or "").partition(" ")
        bearer = token.strip()
        if length < 0 or length > self.gate.max_body or scheme.lower() != "bearer" or not bearer:
            await self.chain(scope, receive, send)
            return
        client = scope.get("client")
        source_ip = client_of(client[0] if client else None, forwarded, self.state.trusted_proxies)
        principal = self.state.token_cache.authenticate_cached(bearer, source_ip, user_agent, rid)
        if principal is None:
            await self.chain(scope, receive, send)
            return
        await self._answer(scope, receive, send, match.group(1), match.group(2), principal)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, name: str, op: str, principal: Any) -> None:
        started = time.perf_counter()
        status = 500
        header = (b"x-request-id", scope["keyguard.request_id"].encode("latin-1"))

        async def reply(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"].append(header)
            await send(message)

        scope["app"] = self.api
        scope[PRINCIPAL] = principal
        handed_on = False
        try:
            try:
                data = await read_body(receive, self.gate.max_body)
            except Disconnected:
                return
            if data is None:  # more than it declared: the gate's refusal
                await self.gate.too_large(scope, principal, reply)
                return
            handed_on = not await self.lane.answer(scope, reply, name, op, data, principal)
        finally:
            if not handed_on:
                RequestMiddleware.observe(scope, status, time.perf_counter() - started)
        if not handed_on:
            return
        scope[LANE_TRIED] = True
        await self.chain(scope, replaying(receive, data), send)
