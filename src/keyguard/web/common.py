"""What every dashboard page shares: templates, security headers, the viewer check, refusal pages.

:func:`viewer` authenticates the request (``auth``), holds a session whose person has a
second factor enrolled at the sign-in second-factor page until it is passed
(``factors``), checks the page's operations and audits the view.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from keyguard.incident.service import IncidentService
from keyguard.vault.principal import Principal
from keyguard.web import auth, factors, views

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "webauthn.js": "text/javascript; charset=utf-8",
}
REFRESH_SECONDS = 30
MAX_FORM_BYTES = 4096

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# The incident report is a standalone document: inline styles, an embedded PNG chart, no script.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; frame-ancestors 'none'"


@cache
def environment() -> Environment:
    """The dashboard's template environment (autoescaped HTML)."""
    return Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html.j2", "html"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def headers(csp: str = PAGE_CSP) -> dict[str, str]:
    """The security headers of every dashboard response (no caching, strict CSP, no framing)."""
    return {
        "Cache-Control": "no-store",
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
    }


def incidents(request: Request) -> IncidentService:
    """One incident service per app, on the vault's engine and clock (shared with ``/v1/incidents``)."""
    service: IncidentService | None = getattr(request.app.state, "incidents", None)
    if service is None:
        vault = auth.vault_of(request)
        service = request.app.state.incidents = IncidentService(vault.engine, vault.clock)
    return service


def render(
    request: Request,
    template: str,
    *,
    principal: Principal | None,
    status_code: int = 200,
    nav: str = "",
    title: str = "",
    refresh: int = 0,
    **context: Any,
) -> HTMLResponse:
    """Render ``template`` with the page frame's context (and the session's CSRF token when signed in)."""
    vault = auth.vault_of(request)
    now = vault.clock.now()
    context.setdefault("csrf", auth.csrf_for(request) if principal is not None else "")
    html = (
        environment()
        .get_template(template)
        .render(
            base=request.scope.get("root_path", "").rstrip("/"),
            principal=principal,
            nav=nav,
            title=title,
            refresh=refresh,
            now=views.short_time(now),
            now_iso=views.iso(now),
            **context,
        )
    )
    return HTMLResponse(html, status_code=status_code, headers=headers())


def refused(request: Request, refusal: auth.Refusal) -> HTMLResponse:
    """401: the sign-in form (and forget a bad cookie); 403: a plain refusal page."""
    if refusal.status == 401:
        error = refusal.reason if refusal.had_credential else ""
        response = render(
            request,
            "login.html.j2",
            principal=None,
            status_code=401,
            title="Sign in",
            error=error,
            next_path=safe_next(request.url.path + (f"?{request.url.query}" if request.url.query else "")),
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="keyguard"'
        if request.cookies.get(auth.COOKIE):
            response.delete_cookie(auth.COOKIE, path="/", httponly=True, samesite="strict")
            response.delete_cookie(auth.SID_COOKIE, path="/", httponly=True, samesite="strict")
        return response
    return render(
        request,
        "error.html.j2",
        principal=None,
        status_code=403,
        title="Access refused",
        heading="Access refused",
        message=refusal.reason,
    )


def not_found(request: Request, principal: Principal, message: str) -> HTMLResponse:
    """The 404 page for an object that does not exist."""
    return render(
        request,
        "error.html.j2",
        principal=principal,
        status_code=404,
        title="Not found",
        heading="Not found",
        message=message,
    )


def safe_next(path: str | None) -> str:
    """A local path to return to after signing in (never another site)."""
    if not path or not path.startswith("/") or path.startswith(("//", "/log")) or "\\" in path:
        return "/"
    return path


def viewer(request: Request, *ops: str, audit: bool = True) -> Principal | HTMLResponse:
    """The signed-in viewer when their role allows every one of ``ops``, else the refusal page.

    A person with a second factor enrolled gets the sign-in second-factor page
    (401) until this session has passed it. The view itself is audited
    (``web.view``, ok or denied, naming the page): the dashboard shows incidents,
    keys and alerts, which are as sensitive as the API's reads.
    """
    who = auth.authenticate(request)
    if isinstance(who, auth.Refusal):
        return refused(request, who)
    pending = factors.sign_in_pending(request, who)
    if pending:
        return second_factor_page(request, who, pending)
    vault = auth.vault_of(request)
    page = f"dashboard {request.url.path[:200]}"
    missing = [op for op in ops if not who.may(op)]
    if missing:
        reason = f"{who.name} may not {missing[0]}"
        vault.record(who, "web.view", "denied", None, None, f"{page}: {reason}")
        return refused(request, auth.Refusal(403, reason, had_credential=True))
    if audit:
        vault.record(who, "web.view", "ok", None, None, page)
    return who


def second_factor_page(
    request: Request, who: Principal, available: tuple[str, ...], error: str = "", status_code: int = 401
) -> HTMLResponse:
    """The sign-in second-factor step: a WebAuthn assertion or a TOTP code, then back to the page asked for."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return render(
        request,
        "second_factor.html.j2",
        principal=None,
        status_code=status_code,
        title="Second factor",
        who=who,
        factors=available,
        error=error,
        next_path=safe_next(str(request.query_params.get("next") or here)),
        csrf=auth.csrf_for(request),
    )
