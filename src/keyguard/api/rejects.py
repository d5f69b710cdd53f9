"""Requests refused before they reach an endpoint are audited like the rest.

A body that does not validate (422), and a JSON body whose text is not valid
Unicode (a lone surrogate escape such as ``"\\ud800"``: Python accepts it, but
it can be neither stored nor hashed into the audit chain, so it used to answer
500 unaudited), is answered 422 and recorded as a ``request`` event, denied,
with the caller's address, user agent and request id.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from keyguard.api import errors
from keyguard.api.deps import client_ip, request_id
from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault

_LONE_SURROGATE = "text must be valid Unicode: the body holds a lone surrogate"


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


async def check_body_text(request: Request) -> None:
    """Refuse (422, audited) a JSON body with a lone surrogate before any endpoint sees it."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    body = await request.body()  # cached by Starlette: the endpoint's own parse reads the same bytes
    if b"\\u" not in body and b"\\U" not in body:  # a surrogate can only arrive as an escape
        return
    try:
        parsed = json.loads(body)
    except ValueError:
        return  # not JSON: the endpoint's validation answers (and is audited below)
    if _has_lone_surrogate(parsed):
        raise RequestValidationError([{"loc": ("body",), "msg": _LONE_SURROGATE, "type": "unicode"}])


_QUERY_NAMES: dict[int, frozenset[str]] = {}


def _declared_query(route: Any) -> frozenset[str]:
    """The query parameter names of a route and of its dependencies."""
    found = _QUERY_NAMES.get(id(route))
    if found is None:
        names: set[str] = set()
        pending = [getattr(route, "dependant", None)]
        while pending:
            dependant = pending.pop()
            if dependant is None:
                continue
            names.update(str(p.alias) for p in dependant.query_params)
            pending.extend(dependant.dependencies)
        found = _QUERY_NAMES[id(route)] = frozenset(names)
    return found


async def check_query(request: Request) -> None:
    """Refuse (422, audited) a query parameter an API operation does not declare, or a repeated one."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    if route is None or not getattr(route, "include_in_schema", False):
        return  # the dashboard's pages and the documentation read their own parameters
    unknown = sorted(set(request.query_params) - _declared_query(route))
    if unknown:
        loc = ("query", unknown[0][:64])
        raise RequestValidationError([{"loc": loc, "msg": "unknown query parameter", "type": "extra_forbidden"}])
    # Every parameter of the API is a single value: a repeated one would silently be its last.
    repeated = sorted(k for k in set(request.query_params) if len(request.query_params.getlist(k)) > 1)
    if repeated:
        loc = ("query", repeated[0])
        raise RequestValidationError([{"loc": loc, "msg": "given more than once", "type": "repeated"}])


def _record(request: Request, reason: str) -> None:
    vault: Vault = request.app.state.vault
    caller = Principal(
        name="anonymous",
        role="none",
        source_ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        request_id=request_id(request) or None,
    )
    path = request.url.path[:200]
    vault.record(caller, "request", "denied", None, None, f"{request.method} {path}: {reason}"[:1000])


async def _validation_error(request: Request, exc: Exception) -> Response:
    response = errors.validation_error(request, exc)
    reason = json.loads(bytes(response.body))["reason"]
    await run_in_threadpool(_record, request, f"422 {reason}")
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    """A body that is not JSON at all (FastAPI's 400) is a bad body like any other: 422, audited."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        invalid = RequestValidationError([{"loc": ("body",), "msg": "not a valid JSON document", "type": "json"}])
        return await _validation_error(request, invalid)
    return errors.http_error(request, exc)


def install(app: FastAPI) -> None:
    """Audit every request refused before its endpoint (after :func:`keyguard.api.errors.install`)."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
