"""Who is looking at the dashboard: the API's bearer token, from a header or a session cookie.

The dashboard accepts exactly the tokens the API accepts (``keyguard client
token NAME``), through ``Authorization: Bearer`` or the ``keyguard_session``
cookie that ``/login`` sets (HttpOnly, SameSite=Strict, Secure over https).
Only the ``admin``, ``operator`` and ``auditor`` roles may look. A presented
token that is refused is audited (``auth`` / ``denied``) like the API does; a
visit without any credential is not (it is a browser asking for the page).
The token is never rendered, logged or echoed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from keyguard.errors import PermissionDeniedError
from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault

COOKIE = "keyguard_session"
SID_COOKIE = "keyguard_sid"  # one sign-in: the second factor and the CSRF token are bound to it
SID_MAX_LENGTH = 64
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
ROLES = frozenset({"admin", "operator", "auditor"})
MAX_TOKEN_LENGTH = 512
_INVALID = "invalid or expired token"


@dataclass(frozen=True)
class Refusal:
    """Why the request may not see the dashboard: 401 (who are you?) or 403 (not you)."""

    status: int
    reason: str
    had_credential: bool = False


def presented_token(request: Request) -> str | None:
    """The bearer token of the request: the Authorization header first, else the session cookie."""
    scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    cookie = request.cookies.get(COOKIE, "").strip()
    return cookie or None


def _source_ip(request: Request) -> str | None:
    if getattr(request.app.state, "trusted_proxies", None) is not None:
        from keyguard.api.deps import client_ip

        return client_ip(request)
    return request.client.host if request.client else None


def _request_id(request: Request) -> str:
    return str(request.scope.get("keyguard.request_id", ""))


def vault_of(request: Request) -> Vault:
    """The application's vault (``create_app`` puts it on ``app.state.vault``)."""
    vault: Vault = request.app.state.vault
    return vault


def _lookup(request: Request, token: str, source_ip: str | None, user_agent: str | None, rid: str) -> Principal:
    cache: Any = getattr(request.app.state, "token_cache", None)
    if cache is not None:
        cached: Principal | None = cache.authenticate_cached(token, source_ip, user_agent, rid)
        if cached is not None:
            return cached
        found: Principal = cache.authenticate(token, source_ip, user_agent, rid)
        return found
    from keyguard.vault.clients import ClientService

    clients: ClientService = getattr(request.app.state, "clients", None) or ClientService(vault_of(request))
    return clients.authenticate(token, source_ip, user_agent, rid)


def check_token(request: Request, token: str | None) -> Principal | Refusal:
    """Authenticate ``token`` for the dashboard (blocking: call it from a worker thread)."""
    if token is None:
        return Refusal(401, "sign in with a client token")
    source_ip = _source_ip(request)
    user_agent = request.headers.get("user-agent")
    rid = _request_id(request)
    vault = vault_of(request)
    if len(token) > MAX_TOKEN_LENGTH:
        _record_refusal(vault, source_ip, user_agent, rid, _INVALID)
        return Refusal(401, _INVALID, had_credential=True)
    try:
        principal = _lookup(request, token, source_ip, user_agent, rid)
    except PermissionDeniedError as exc:
        _record_refusal(vault, source_ip, user_agent, rid, exc.message)
        if exc.message == _INVALID:
            return Refusal(401, _INVALID, had_credential=True)
        return Refusal(403, exc.message, had_credential=True)
    if principal.role not in ROLES:
        reason = f"role {principal.role} may not view the dashboard"
        vault.record(principal, "web.view", "denied", None, None, reason)
        return Refusal(403, reason, had_credential=True)
    return principal


def authenticate(request: Request) -> Principal | Refusal:
    """The dashboard viewer of ``request`` (blocking), or why not."""
    return check_token(request, presented_token(request))


def _record_refusal(vault: Vault, source_ip: str | None, user_agent: str | None, rid: str, reason: str) -> None:
    anonymous = Principal(name="anonymous", role="none", source_ip=source_ip, user_agent=user_agent, request_id=rid)
    vault.record(anonymous, "auth", "denied", None, None, reason)


def is_secure(request: Request) -> bool:
    """True when the page was fetched over https (the cookie is then marked Secure)."""
    return request.url.scheme == "https"


def same_origin(request: Request) -> bool:
    """Refuse cross-site form posts (login CSRF).

    ``Sec-Fetch-Site`` (sent by current browsers) must say ``same-origin`` or
    ``none``; an ``Origin`` header, when sent and not ``null``, must name this host.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return site == "same-origin"
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") == host


def session_id(request: Request) -> str:
    """This sign-in's random id (the ``keyguard_sid`` cookie set by ``POST /login``), or ''."""
    sid = request.cookies.get(SID_COOKIE, "").strip()
    if len(sid) > SID_MAX_LENGTH or not sid.replace("-", "").replace("_", "").isalnum():
        return ""
    return sid


def session_hash(token: str, sid: str = "") -> str:
    """A dashboard session's stored name: SHA-256 of its token and sign-in id (neither is stored)."""
    material = b"keyguard-web-session\x00" + token.encode("utf-8", "replace") + b"\x00" + sid.encode()
    return hashlib.sha256(material).hexdigest()


def csrf_token(token: str, sid: str = "") -> str:
    """The session's synchroniser token: an HMAC keyed by the session token over the sign-in id.

    It is bound to this sign-in (a new sign-in gets a new one), a cross-site page can
    neither read the HttpOnly cookies nor this value (it is only rendered into
    same-origin pages), and every node derives the same value.
    """
    mac = hmac.new(token.encode("utf-8", "replace"), b"keyguard dashboard csrf v1\x00" + sid.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def csrf_for(request: Request) -> str:
    """This request's session CSRF token ('' without a session)."""
    token = presented_token(request)
    return csrf_token(token, session_id(request)) if token else ""


def csrf_ok(request: Request, submitted: str | None) -> bool:
    """True when ``submitted`` (form field, else ``X-CSRF-Token``) is this session's CSRF token (constant time)."""
    expected = csrf_for(request)
    value = submitted if submitted is not None else request.headers.get(CSRF_HEADER)
    if not expected or not value:
        return False
    return hmac.compare_digest(expected.encode(), value.strip().encode("utf-8", "replace"))
