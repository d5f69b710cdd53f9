"""A fast lane for the two hottest calls: ``POST /v1/keys/{name}/encrypt`` and ``…/decrypt``.

Most of a request's CPU went to the framework (routing, dependency injection,
model validation), not to the vault. This ASGI middleware answers the common
case itself — a well-formed JSON body, a caller the gate in front
(:mod:`keyguard.api.gate`) authenticated before reading the body, a symmetric
key already in the vault's cache, no second factor — with the
same vault calls, the same audit records, the same status codes and the
same response bodies as the routes.
Anything else (and every error that is not a domain error) goes to FastAPI
unchanged, with the body replayed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyguard.api.calls import vault_call
from keyguard.api.convert import b64decode
from keyguard.api.errors import error_body, status_of
from keyguard.api.gate import MAX_CIPHERTEXT, PRINCIPAL
from keyguard.crypto import b64, envelope
from keyguard.errors import KeyguardError, UsageError
from keyguard.vault.principal import Principal

PATH = re.compile(r"^/v1/keys/([a-z0-9][a-z0-9._-]{0,63})/(encrypt|decrypt)$")
LANE_TRIED = "keyguard.lane_tried"  # scope key: the lane already passed this request on
_FIELDS = {"encrypt": ("plaintext_b64", "context"), "decrypt": ("ciphertext", "context")}
_JSON = [(b"content-type", b"application/json")]


class CryptoFastPath:
    """Pure ASGI middleware in front of the FastAPI app (inside the request-id/metrics middleware)."""

    def __init__(self, app: ASGIApp, api: Any) -> None:
        self.app = app
        self.api = api
        self.state = api.state
        self._routes: dict[str, Any] = {}

    def _route(self, op: str) -> Any:
        """The FastAPI route of ``op``, so the metrics middleware labels the request alike."""
        if not self._routes:
            self._routes = {getattr(r, "name", ""): r for r in _walk(self.api.routes)}
        return self._routes.get(op)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = PATH.match(scope["path"]) if scope["method"] == "POST" else None
        principal = scope.get(PRINCIPAL) if match is not None else None
        if match is None or principal is None or LANE_TRIED in scope:
            await self.app(scope, receive, send)
            return
        # The gate in front authenticated the caller and read the (capped) body: one message.
        message = await receive()
        data: bytes = message.get("body", b"")
        handled = await self._try(scope, send, match.group(1), match.group(2), data, principal)
        if not handled:
            await self.app(scope, replaying(receive, data), send)

    async def answer(self, scope: Scope, send: Send, name: str, op: str, data: bytes, principal: Principal) -> bool:
        """Answer the request (True), or leave it to the routes (False: nothing was sent, nothing audited)."""
        return await self._try(scope, send, name, op, data, principal)

    async def _try(self, scope: Scope, send: Send, name: str, op: str, data: bytes, principal: Principal) -> bool:
        for header, _value in scope["headers"]:
            if header == b"x-keyguard-otp":
                return False  # the route checks the second factor
        request = _parse(data, op)
        if request is None:
            return False
        vault = self.state.vault
        if vault.cached_key_info(name) is None:
            return False
        scope["path_params"] = {"name": name}
        scope["route"] = self._route(op)
        try:
            if op == "encrypt":
                plaintext, context = request
                ciphertext, version = await vault_call(
                    vault, name, lambda: vault.encrypt(principal, name, plaintext, context)
                )
                document: dict[str, Any] = {"ciphertext": ciphertext, "version": version, "key": name}
            else:
                text, context = request
                if envelope.parse(text).key != name:
                    return False  # the route explains the mismatch
                plain, key, version = await vault_call(vault, name, lambda: vault.decrypt(principal, text, context))
                document = {"plaintext_b64": b64.encode(plain), "version": version, "key": key}
        except KeyguardError as exc:
            status, slug = status_of(exc)
            await _respond(send, status, error_body(slug, exc.message, exc.hint))
            return True
        await _respond(send, 200, document)
        return True


def replaying(receive: Receive, body: bytes) -> Receive:
    """A ``receive`` that first hands back ``body`` (already read) as one message, then reads on."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _walk(routes: list[Any]) -> Iterator[Any]:
    """Every route, those of included routers too (FastAPI keeps an included router as one entry)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _walk(inner.routes)
        else:
            yield route


def _parse(data: bytes, op: str) -> tuple[Any, dict[str, Any] | None] | None:
    """The request's fields when the body has exactly the expected shape, else None (the route decides)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or not set(doc) <= set(_FIELDS[op]):
        return None
    first = doc.get(_FIELDS[op][0])
    context = doc.get("context")
    if not isinstance(first, str) or not (context is None or isinstance(context, dict)):
        return None
    if op == "decrypt":
        return (first, context) if len(first) <= MAX_CIPHERTEXT else None
    try:
        return b64decode(first, "plaintext_b64"), context
    except UsageError:
        return None


async def _respond(send: Send, status: int, document: dict[str, Any]) -> None:
    payload = orjson.dumps(document)
    headers = [*_JSON, (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
