"""The one table that turns domain errors into HTTP answers.

Every refused, missing, malformed or tampered request answers with the same
body ``{"error", "reason", "hint"}``; for a refusal the reason names the state
(``version 1 is compromised``, SPEC §6). Bodies never echo the request: a
validation error reports where and what, not the value that was sent.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from keyguard.errors import (
    AuditWriteError,
    ConflictError,
    DataFileError,
    IntegrityError,
    KeyguardError,
    KeyRejectedError,
    NotFoundError,
    PermissionDeniedError,
    RefusedError,
    SecondFactorError,
    SecondFactorLockedError,
    UsageError,
)

log = logging.getLogger("keyguard.api")


class AuthenticationError(PermissionDeniedError):
    """No bearer token, or one that is unknown, expired or revoked (HTTP 401)."""

    http_status = 401


# (error class, HTTP status, error slug); the first matching row wins, so
# subclasses come before their parents. Kept equal to each class's
# ``http_status`` by a test.
STATUS_TABLE: tuple[tuple[type[KeyguardError], int, str], ...] = (
    (AuthenticationError, 401, "unauthenticated"),
    (SecondFactorError, 401, "unauthenticated"),
    (SecondFactorLockedError, 429, "too_many_attempts"),
    (KeyRejectedError, 422, "invalid"),
    (RefusedError, 403, "refused"),
    (NotFoundError, 404, "not_found"),
    (UsageError, 422, "invalid"),
    (ConflictError, 409, "conflict"),
    (IntegrityError, 409, "integrity"),
    (AuditWriteError, 503, "audit_unavailable"),
    (DataFileError, 500, "internal"),
    (KeyguardError, 500, "internal"),
)


def status_of(exc: KeyguardError) -> tuple[int, str]:
    """HTTP status and error slug of a domain error."""
    for cls, status, slug in STATUS_TABLE:
        if isinstance(exc, cls):
            return status, slug
    return 500, "internal"  # pragma: no cover - KeyguardError is the last row


def error_body(slug: str, reason: str, hint: str = "") -> dict[str, Any]:
    """The uniform error document."""
    body: dict[str, Any] = {"error": slug, "reason": reason}
    if hint:
        body["hint"] = hint
    return body


def _keyguard_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KeyguardError)
    status, slug = status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, SecondFactorLockedError):
        headers = {"Retry-After": str(exc.retry_after)}
    return JSONResponse(error_body(slug, exc.message, exc.hint), status_code=status, headers=headers)


def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """422 naming where and what, never the value (audited by :mod:`keyguard.api.rejects`)."""
    assert isinstance(exc, RequestValidationError)
    details = [
        {
            "loc": list(err.get("loc", ())),
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"] if part != "body") or "body"
    body = error_body("invalid", f"{where}: {first['msg']}", "see the OpenAPI schema at /openapi.json")
    body["detail"] = details
    return JSONResponse(body, status_code=422)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """Every method some route serves on this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            methods.add(method)
    return ", ".join(sorted(methods))


def http_error(request: Request, exc: Exception) -> JSONResponse:
    """An HTTP error raised by routing or FastAPI (404, 405 with ``Allow`` …) in the uniform body."""
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
    slug = {
        401: "unauthenticated",
        403: "refused",
        404: "not_found",
        405: "method_not_allowed",
    }.get(exc.status_code, "http_error")
    return JSONResponse(
        error_body(slug, str(exc.detail)),
        status_code=exc.status_code,
        headers=headers or None,
    )


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return JSONResponse(error_body("internal", "internal error"), status_code=500)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(KeyguardError, _keyguard_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, _unexpected)
