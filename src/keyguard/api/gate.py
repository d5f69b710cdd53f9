"""The front door for request bodies: authenticate from the headers first, then read at most ``max_body``.

A body used to be read whole before anything looked at the request (a 400 MB
body cost 1.3 GB of RSS, unauthenticated). Now, for ``POST``/``PUT``/``PATCH``:

* on ``/v1/`` (every route there needs a bearer token) the caller is
  authenticated from the ``Authorization`` header before a byte of the body is
  read; a refusal answers 401/403 (audited, as the routes do) with the body unread;
* a ``Content-Length`` over the cap answers 413 at once; a body without one
  (chunked) is read until it passes the cap, then 413 and the connection closes;
* what fits is handed on, replayed as one message (the fast lane and the
  routes read it from there).

The cap is ``[api] max_body`` in ``keyguard.toml`` (bytes; default 16 MiB plus
the 16 MiB ciphertext cap, so the largest ciphertext a route accepts fits).
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyguard.api.deps import authenticate_request, client_ip
from keyguard.api.errors import error_body, status_of
from keyguard.errors import KeyguardError, UsageError
from keyguard.vault.principal import Principal

MAX_CIPHERTEXT = 16 * 1024 * 1024  # characters of a ciphertext the routes accept
DEFAULT_MAX_BODY = 16 * 1024 * 1024 + MAX_CIPHERTEXT
PRINCIPAL = "keyguard.principal"  # scope key: the caller the gate authenticated
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_JSON = (b"content-type", b"application/json")
log = logging.getLogger("keyguard.api")


#: Endpoints whose credential is the body itself (still capped, and small: the route reads 8 KiB at most).
_CREDENTIAL_IN_BODY = frozenset({"/v1/auth/token"})


def load_max_body(config_file: Path | None) -> int:
    """``[api] max_body`` of ``keyguard.toml`` (bytes), or the default; bad values are a usage error."""
    if config_file is None:
        return DEFAULT_MAX_BODY
    try:
        data = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return DEFAULT_MAX_BODY
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {config_file.name}: {type(exc).__name__}") from None
    value = data.get("api", {}).get("max_body", DEFAULT_MAX_BODY)
    if type(value) is not int or value < 1024:
        raise UsageError("[api] max_body must be a whole number of bytes, at least 1024", hint="e.g. 33554432")
    return value


class Disconnected(Exception):
    """The client went away while sending its body."""


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None as soon as it passes ``limit`` bytes (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def send_error(send: Send, status: int, body: dict[str, Any], *extra: tuple[bytes, bytes]) -> None:
    """Answer ``status`` with the uniform error document."""
    payload = orjson.dumps(body)
    headers = [_JSON, (b"content-length", str(len(payload)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class BodyGate:
    """Pure ASGI middleware in front of the fast lane and FastAPI (inside the request-id/metrics middleware)."""

    def __init__(self, app: ASGIApp, api: Any, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.api = api
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.api  # Starlette sets it too; the dependencies below read app.state
        request = Request(scope)
        principal: Principal | None = None
        if scope["path"].startswith("/v1/") and scope["path"] not in _CREDENTIAL_IN_BODY:
            try:
                principal = await authenticate_request(request, second_factor=False)
            except KeyguardError as exc:
                status, slug = status_of(exc)
                # The body stays unread: close the connection rather than read it to reach the next request.
                extra = [(b"connection", b"close")] + ([(b"www-authenticate", b"Bearer")] if status == 401 else [])
                await send_error(send, status, error_body(slug, exc.message, exc.hint), *extra)
                return
            except Exception as exc:  # noqa: BLE001 - as the routes' handler of the unexpected: 500, type logged
                log.error("internal error authenticating %s: %s", scope["path"][:200], type(exc).__name__)
                await send_error(send, 500, error_body("internal", "internal error"))
                return
            scope[PRINCIPAL] = principal
        declared = _declared_length(scope)
        body = None
        if declared is None or declared <= self.max_body:
            try:
                body = await read_body(receive, self.max_body)
            except Disconnected:
                return
        if body is None:
            await self.too_large(scope, principal, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # http.disconnect when the client goes away
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def too_large(self, scope: Scope, principal: Principal | None, send: Send) -> None:
        """Refuse (413, audited, connection closed) a body over the cap."""
        request = Request(scope)
        reason = f"the request body is over {self.max_body} bytes"
        caller = principal or Principal(
            name="anonymous",
            role="none",
            source_ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
            request_id=str(request.scope.get("keyguard.request_id", "")) or None,
        )
        what = f"{request.method} {request.url.path[:200]}: 413 {reason}"
        try:
            await run_in_threadpool(self.api.state.vault.record, caller, "request", "denied", None, None, what)
        except KeyguardError:
            pass  # the refusal stands whether or not its record could be written
        body = error_body("too_large", reason, "send a smaller body, or raise [api] max_body in keyguard.toml")
        await send_error(send, 413, body, (b"connection", b"close"))
