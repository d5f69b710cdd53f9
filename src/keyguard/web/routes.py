"""The dashboard's pages: server-rendered views of the vault, incidents, alerts and audit log; sign-in.

Mount it on the API app with :func:`include` (or ``app.include_router(router)``;
the router serves its own stylesheet and script under ``/static/``). It reads
``app.state.vault`` (and ``app.state.token_cache`` when present) as set by
:func:`keyguard.api.app.create_app`.

Pages: ``/`` overview · ``/incidents/{id}`` · ``/incidents/{id}/report.html?lang=en|zh`` ·
``/keys`` · ``/alerts`` · ``/audit`` · ``/login`` (GET form, POST token) · ``/logout`` (POST).
The actions (POST, CSRF token, second factor) are in :mod:`keyguard.web.actions`, whose
router this one includes.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from keyguard.errors import NotFoundError, PermissionDeniedError
from keyguard.web import actions, auth, factors, views
from keyguard.web.common import MAX_FORM_BYTES, REFRESH_SECONDS, REPORT_CSP, STATIC_DIR, STATIC_FILES, environment
from keyguard.web.common import headers as _headers
from keyguard.web.common import incidents as _incidents
from keyguard.web.common import not_found as _not_found
from keyguard.web.common import refused as _refused
from keyguard.web.common import render as _render
from keyguard.web.common import safe_next as _safe_next
from keyguard.web.common import viewer as _viewer

__all__ = ["environment", "include", "router"]

router = APIRouter(include_in_schema=False)


# ------------------------------------------------------------------------------------- pages


@router.get("/", name="web.overview", response_class=HTMLResponse)
def overview_page(request: Request) -> Response:
    """Open incidents with their SLA phase and overdue duties; keys by state; open alerts."""
    who = _viewer(request, "incident.read", "key.read")
    if isinstance(who, HTMLResponse):
        return who
    data = views.overview(auth.vault_of(request), _incidents(request), who)
    return _render(
        request, "overview.html.j2", principal=who, nav="overview", title="Overview", refresh=REFRESH_SECONDS, **data
    )


@router.get("/incidents/{incident_id}", name="web.incident", response_class=HTMLResponse)
def incident_page(request: Request, incident_id: int) -> Response:
    """One incident: phases and tasks, obligations with countdowns, timeline, risk factors."""
    who = _viewer(request, "incident.read")
    if isinstance(who, HTMLResponse):
        return who
    try:
        data = views.incident_detail(_incidents(request), incident_id)
    except NotFoundError:
        return _not_found(request, who, f"There is no incident {incident_id}.")
    return _render(
        request,
        "incident.html.j2",
        principal=who,
        nav="overview",
        title=f"Incident {incident_id}",
        refresh=REFRESH_SECONDS,
        can_write=who.may("incident.write"),
        **data,
    )


@router.get("/incidents/{incident_id}/report.html", name="web.report", response_class=HTMLResponse)
def report_page(request: Request, incident_id: int, lang: str = Query(default="en", pattern="^(en|zh)$")) -> Response:
    """The incident report (HTML, English or Simplified Chinese), as ``keyguard incident report`` renders it."""
    who = _viewer(request, "incident.read")
    if isinstance(who, HTMLResponse):
        return who
    from keyguard.incident.report.render import render_report
    from keyguard.incident.report.sources import gather_report_data

    try:
        data = gather_report_data(_incidents(request), incident_id)
    except NotFoundError:
        return _not_found(request, who, f"There is no incident {incident_id}.")
    body = render_report(data, "html", lang)
    headers = _headers(REPORT_CSP)
    headers["Content-Disposition"] = f'inline; filename="incident-{incident_id}-report-{lang}.html"'
    return HTMLResponse(body, headers=headers)


@router.get("/keys", name="web.keys", response_class=HTMLResponse)
def keys_page(request: Request) -> Response:
    """Every key with its versions and their states (metadata only)."""
    who = _viewer(request, "key.read")
    if isinstance(who, HTMLResponse):
        return who
    rows = views.key_rows(auth.vault_of(request), who)
    return _render(
        request,
        "keys.html.j2",
        principal=who,
        nav="keys",
        title="Keys",
        keys=rows,
        can_contain=who.may("key.compromise"),
    )


@router.get("/alerts", name="web.alerts", response_class=HTMLResponse)
def alerts_page(request: Request) -> Response:
    """Open alerts of the monitor (when its tables exist)."""
    who = _viewer(request, "alert.read")
    if isinstance(who, HTMLResponse):
        return who
    rows = views.alert_rows(auth.vault_of(request).engine)
    return _render(
        request,
        "alerts.html.j2",
        principal=who,
        nav="alerts",
        title="Alerts",
        refresh=REFRESH_SECONDS,
        alerts=rows,
        can_ack=who.may("alert.write"),
    )


@router.get("/audit", name="web.audit", response_class=HTMLResponse)
def audit_page(request: Request) -> Response:
    """The last 100 audit events and the chain's verification; the read is itself audited."""
    who = _viewer(request, audit=False)  # audit.read is checked (and audited) below
    if isinstance(who, HTMLResponse):
        return who
    vault = auth.vault_of(request)
    try:
        with vault.audited(who, "audit.read", None) as ctx:
            who.require("audit.read")
            chain = views.chain_status(vault)
            events = views.last_events(vault.engine)
            ctx["reason"] = f"dashboard: last {len(events)} events"
    except PermissionDeniedError as exc:
        return _refused(request, auth.Refusal(403, exc.message, had_credential=True))
    return _render(request, "audit.html.j2", principal=who, nav="audit", title="Audit log", chain=chain, events=events)


# ------------------------------------------------------------------------------------- sign in


@router.get("/login", name="web.login", response_class=HTMLResponse)
def login_form(request: Request, next_path: str = Query(default="/", alias="next", max_length=512)) -> Response:
    """The sign-in form: paste a ``keyguard client token`` value."""
    return _render(request, "login.html.j2", principal=None, title="Sign in", error="", next_path=_safe_next(next_path))


@router.post("/login", name="web.login.submit", response_class=HTMLResponse)
async def login_submit(request: Request) -> Response:
    """Check the pasted token; on success set the session cookie and go to ``next``."""
    if not auth.same_origin(request):
        return await run_in_threadpool(
            _refused, request, auth.Refusal(403, "cross-site sign-in refused", had_credential=True)
        )
    body = await request.body()
    fields = parse_qs(body[:MAX_FORM_BYTES].decode("utf-8", "replace"), max_num_fields=4)
    token = (fields.get("token") or [""])[0].strip()
    next_path = _safe_next((fields.get("next") or ["/"])[0])
    who = await run_in_threadpool(auth.check_token, request, token or None)
    if isinstance(who, auth.Refusal):
        if who.status == 401:
            reason = who.reason if token else "paste a client token"
            return await run_in_threadpool(
                _render,
                request,
                "login.html.j2",
                principal=None,
                status_code=401,
                title="Sign in",
                error=reason,
                next_path=next_path,
            )
        return await run_in_threadpool(_refused, request, who)
    await run_in_threadpool(auth.vault_of(request).record, who, "web.login", "ok", None, None, "dashboard sign-in")
    response = RedirectResponse(next_path, status_code=303, headers={"Cache-Control": "no-store"})
    secure = auth.is_secure(request)
    response.set_cookie(auth.COOKIE, token, path="/", httponly=True, samesite="strict", secure=secure)
    # A fresh sign-in id: this sign-in's second factor and CSRF token belong to it alone.
    sid = secrets.token_urlsafe(32)
    response.set_cookie(auth.SID_COOKIE, sid, path="/", httponly=True, samesite="strict", secure=secure)
    return response


@router.post("/logout", name="web.logout")
def logout(request: Request) -> Response:
    """Forget the session cookie (the token itself stays valid until it expires)."""
    factors.forget_session(request)
    base = request.scope.get("root_path", "").rstrip("/")
    response = RedirectResponse(f"{base}/login", status_code=303, headers={"Cache-Control": "no-store"})
    response.delete_cookie(auth.COOKIE, path="/", httponly=True, samesite="strict", secure=auth.is_secure(request))
    response.delete_cookie(auth.SID_COOKIE, path="/", httponly=True, samesite="strict", secure=auth.is_secure(request))
    return response


# ------------------------------------------------------------------------------------- static


@router.get("/static/{name}", name="web.static")
def static_file(name: str) -> Response:
    """The dashboard's stylesheet and script (a fixed list: no path ever reaches the disk)."""
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        return Response("not found", status_code=404, media_type="text/plain")
    content = (STATIC_DIR / name).read_bytes()
    return Response(
        content,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


router.include_router(actions.router)


def include(app: FastAPI) -> None:
    """Add the dashboard to ``app`` (built by :func:`keyguard.api.app.create_app`).

    The router carries every page and its static files (``/static/dashboard.css``,
    ``/static/dashboard.js``), so nothing else needs mounting.
    """
    app.include_router(router)
