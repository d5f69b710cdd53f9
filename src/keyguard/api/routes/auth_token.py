"""``POST /v1/auth/token``: a client credential in, a JWT access token out (OAuth2 client credentials).

The client credential is the client's opaque ``kgt_`` token (``keyguard client
token``). It may come as ``client_secret`` in a form (``application/x-www-form-
urlencoded``, RFC 6749 §4.4) or JSON body with ``grant_type=client_credentials``
and optionally ``client_id`` (which must then name the same client), as HTTP
Basic ``client_id:client_secret``, or as ``Authorization: Bearer kgt_…``. A JWT
cannot be exchanged for another one. Refusals answer 401 (403 for a suspended
client) and are audited as ``auth.token`` denied.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from keyguard.api.auth import is_invalid_token
from keyguard.api.deps import client_ip, request_id
from keyguard.api.errors import AuthenticationError
from keyguard.errors import PermissionDeniedError, UsageError
from keyguard.vault.jwt_tokens import JwtService
from keyguard.vault.principal import Principal

router = APIRouter(tags=["auth"])
_MAX_BODY = 8192
_FIELDS = {
    "grant_type": {"type": "string", "enum": ["client_credentials"]},
    "client_id": {"type": "string", "description": "the client's name (optional)"},
    "client_secret": {"type": "string", "description": "the client's kgt_ token"},
}
_SCHEMA = {"type": "object", "properties": _FIELDS, "additionalProperties": False}
_OPENAPI = {
    "requestBody": {
        "content": {
            "application/x-www-form-urlencoded": {"schema": _SCHEMA},
            "application/json": {"schema": _SCHEMA},
        },
        "required": False,
    }
}


def _fields(request: Request, body: bytes) -> dict[str, str]:
    """The form or JSON fields of the body (strings only); UsageError for anything else."""
    if not body.strip():
        return {}
    if len(body) > _MAX_BODY:
        raise UsageError("body too large")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("body must be UTF-8") from None
    document: Any
    if kind == "application/json":
        try:
            document = json.loads(text)
        except ValueError:
            raise UsageError("body is not JSON") from None
    elif kind == "application/x-www-form-urlencoded":
        document = dict(parse_qsl(text, keep_blank_values=True, max_num_fields=16))
    else:
        raise UsageError("unsupported content type", hint="send application/x-www-form-urlencoded or JSON")
    if isinstance(document, dict) and set(document) - set(_FIELDS):
        # the same refusal as the models' extra="forbid": an unknown field is an error, not ignored
        raise RequestValidationError(
            [
                {"type": "extra_forbidden", "loc": ("body", name), "msg": "Extra inputs are not permitted"}
                for name in sorted(set(document) - set(_FIELDS))
            ]
        )
    if not isinstance(document, dict) or not all(isinstance(v, str) for v in document.values()):
        raise UsageError("the token request holds string fields only", hint="grant_type, client_id, client_secret")
    return {str(k): v for k, v in document.items()}


def _credentials(request: Request, fields: dict[str, str]) -> tuple[str | None, str | None]:
    """``(client_id, client_secret)`` from the body or the Authorization header."""
    grant = fields.get("grant_type")
    if grant is not None and grant != "client_credentials":
        raise UsageError(f"unsupported grant_type {grant[:40]!r}", hint="use grant_type=client_credentials")
    client_id, secret = fields.get("client_id"), fields.get("client_secret")
    scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
    if secret is None and scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return client_id, None
        name, sep, secret_part = decoded.partition(":")
        if sep:
            client_id, secret = name or client_id, secret_part
    elif secret is None and scheme.lower() == "bearer":
        secret = value.strip()
    return client_id, secret


@router.post("/v1/auth/token", name="auth.token", openapi_extra=_OPENAPI)
async def issue_access_token(request: Request) -> JSONResponse:
    """Exchange a client credential for a JWT (``exp`` at most 15 minutes away) signed by a key in the JWKS."""
    jwts: JwtService = request.app.state.jwts
    source_ip, user_agent, rid = client_ip(request), request.headers.get("user-agent"), request_id(request)
    fields = _fields(request, await request.body())
    client_id, secret = _credentials(request, fields)
    try:
        if not secret:
            raise PermissionDeniedError("invalid or expired token", hint="send client_secret")
        issued = await run_in_threadpool(jwts.exchange, secret, client_id, source_ip, user_agent, rid)
    except PermissionDeniedError as exc:
        anonymous = Principal(name="anonymous", role="none", source_ip=source_ip, user_agent=user_agent, request_id=rid)
        await run_in_threadpool(jwts.vault.record, anonymous, "auth.token", "denied", None, None, exc.message)
        if is_invalid_token(exc):
            raise AuthenticationError("invalid client credential", hint=exc.hint) from None
        raise
    document = issued.to_dict()
    document["expires_at"] = issued.expires_at.isoformat()
    return JSONResponse(document, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
