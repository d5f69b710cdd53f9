"""What the dashboard can do: contain a key version, acknowledge alerts, close tasks, download reports.

Every state change is a same-origin POST of a signed-in person that carries the
session's CSRF token (form field ``csrf`` or header ``X-CSRF-Token``; missing or
wrong → 403, audited); containing a key version also needs a fresh second factor
sent with the request (a WebAuthn assertion for exactly that version, or a TOTP
code). Each action calls the same service function as the CLI (``Vault.set_state``,
``monitor.alerts.acknowledge``/``acknowledge_group``, ``IncidentService.complete_task``/
``skip_task``, ``render_report``) and is audited with the person's principal.

WebAuthn enrolment and the sign-in second factor live here too (``/security``,
``/webauthn/…``, ``/login/second-factor``).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from keyguard.errors import ConflictError, KeyguardError, NotFoundError, RefusedError, UsageError
from keyguard.vault.principal import Principal
from keyguard.web import auth, factors, views
from keyguard.web.common import (
    headers,
    incidents,
    not_found,
    refused,
    render,
    safe_next,
    second_factor_page,
    viewer,
)

router = APIRouter(include_in_schema=False)

MAX_ACTION_BYTES = 32_768
REPORT_TYPES = {
    "md": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
}
_CSRF_REFUSED = "missing or wrong CSRF token"


async def _body(request: Request) -> bytes | None:
    """The request body, or None when it is larger than :data:`MAX_ACTION_BYTES`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_ACTION_BYTES:
        return None
    body = await request.body()
    return body if len(body) <= MAX_ACTION_BYTES else None


async def _form(request: Request) -> dict[str, str] | None:
    body = await _body(request)
    if body is None:
        return None
    try:
        parsed = parse_qs(body.decode("utf-8", "replace"), max_num_fields=12)
    except ValueError:  # more fields than any dashboard form has
        return None
    return {name: values[0] for name, values in parsed.items()}


async def _json(request: Request) -> dict[str, Any] | None:
    body = await _body(request)
    if body is None:
        return None
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _too_large(request: Request) -> HTMLResponse:
    return render(
        request,
        "error.html.j2",
        principal=None,
        status_code=413,
        title="Too large",
        heading="Too large",
        message="The form is too large or has too many fields.",
    )


def _redirect(request: Request, path: str) -> RedirectResponse:
    base = request.scope.get("root_path", "").rstrip("/")
    return RedirectResponse(f"{base}{path}", status_code=303, headers={"Cache-Control": "no-store"})


def _json_response(body: dict[str, Any], status_code: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, headers=headers())


def _acting(request: Request, fields: dict[str, str], *ops: str) -> Principal | HTMLResponse:
    """The signed-in person allowed ``ops`` who sent this session's CSRF token, else the refusal (audited)."""
    if not auth.same_origin(request):
        return refused(request, auth.Refusal(403, "cross-site form post refused", had_credential=True))
    who = viewer(request, *ops, audit=False)
    if isinstance(who, HTMLResponse):
        return who
    if not auth.csrf_ok(request, fields.get(auth.CSRF_FIELD)):
        auth.vault_of(request).record(
            who, "web.action", "denied", None, None, f"{request.url.path[:200]}: {_CSRF_REFUSED}"
        )
        return refused(request, auth.Refusal(403, _CSRF_REFUSED, had_credential=True))
    return who


def _failed(request: Request, who: Principal, exc: KeyguardError) -> HTMLResponse:
    """A refused or failed action: 404, 409, 400, or 403 (already audited by the service)."""
    if isinstance(exc, NotFoundError):
        return not_found(request, who, exc.message)
    status = 409 if isinstance(exc, ConflictError) else 400 if isinstance(exc, UsageError) else 403
    heading = {409: "Nothing changed", 400: "Not done"}.get(status, "Refused")
    return render(
        request,
        "error.html.j2",
        principal=who,
        status_code=status,
        title=heading,
        heading=heading,
        message=exc.message,
    )


# ------------------------------------------------------------------------------ contain a key version


@router.post("/keys/{name}/versions/{version}/compromise", name="web.key.compromise")
async def contain_version(request: Request, name: str, version: int) -> Response:
    """Mark a key version compromised (refused for use from then on): CSRF token and a fresh second factor."""
    fields = await _form(request)
    if fields is None:
        return await run_in_threadpool(_too_large, request)
    return await run_in_threadpool(_contain, request, name[:128], version, fields)


def _contain(request: Request, name: str, version: int, fields: dict[str, str]) -> Response:
    who = _acting(request, fields)
    if isinstance(who, HTMLResponse):
        return who
    vault = auth.vault_of(request)
    if not who.may("key.compromise", name):
        reason = f"{who.name} may not key.compromise on key {name!r}"
        vault.record(who, "key.compromise", "denied", name, version, reason)
        return refused(request, auth.Refusal(403, reason, had_credential=True))
    try:
        strong, factor = factors.check_factor(request, who, f"key.compromise:{name}:{version}", fields)
    except RefusedError as exc:
        vault.record(who, "key.compromise", "denied", name, version, f"dashboard: {exc.message}")
        return refused(request, auth.Refusal(403, exc.message, had_credential=True))
    reason = " ".join(fields.get("reason", "").split())[:300] or "contained from the dashboard"
    try:
        vault.set_state(strong, name, version, "compromised", f"{reason} (dashboard, {factor})")
    except KeyguardError as exc:
        return _failed(request, who, exc)
    return _redirect(request, f"/keys#key-{quote(name, safe='')}")


# ------------------------------------------------------------------------------ alerts


@router.post("/alerts/{alert_id}/ack", name="web.alert.ack")
async def alert_ack(request: Request, alert_id: int) -> Response:
    """Acknowledge an open alert (``alert.write``); audited."""
    fields = await _form(request)
    if fields is None:
        return await run_in_threadpool(_too_large, request)
    return await run_in_threadpool(_ack, request, alert_id, fields, False)


@router.post("/alerts/{alert_id}/ack-group", name="web.alert.ack_group")
async def alert_ack_group(request: Request, alert_id: int) -> Response:
    """Acknowledge every open alert of the group (rule, key, source) of an alert; audited."""
    fields = await _form(request)
    if fields is None:
        return await run_in_threadpool(_too_large, request)
    return await run_in_threadpool(_ack, request, alert_id, fields, True)


def _ack(request: Request, alert_id: int, fields: dict[str, str], group: bool) -> Response:
    from keyguard.monitor import alerts

    who = _acting(request, fields, "alert.write")
    if isinstance(who, HTMLResponse):
        return who
    vault = auth.vault_of(request)
    try:
        if group:
            ids = alerts.acknowledge_group(vault.engine, alert_id, by=who.name)
            what = f"alerts {', '.join(map(str, ids)) or 'none'} (group of {alert_id}) acknowledged on the dashboard"
        else:
            alerts.acknowledge(vault.engine, alert_id, by=who.name)
            what = f"alert {alert_id} acknowledged on the dashboard"
    except NotFoundError as exc:
        return not_found(request, who, exc.message)
    except ConflictError:
        what = f"alert {alert_id} was acknowledged already"  # the list shows where it stands
    vault.record(who, "alert.ack", "ok", None, None, what)
    return _redirect(request, "/alerts")


# ------------------------------------------------------------------------------ incident tasks and reports


@router.post("/incidents/{incident_id}/tasks/{task_id}/{outcome}", name="web.task")
async def task_outcome(request: Request, incident_id: int, task_id: str, outcome: str) -> Response:
    """Mark a task ``done`` (with a note) or ``not-applicable`` (with a reason); audited."""
    fields = await _form(request)
    if fields is None:
        return await run_in_threadpool(_too_large, request)
    return await run_in_threadpool(_task, request, incident_id, task_id[:64], outcome, fields)


def _task(request: Request, incident_id: int, task_id: str, outcome: str, fields: dict[str, str]) -> Response:
    who = _acting(request, fields, "incident.write")
    if isinstance(who, HTMLResponse):
        return who
    vault = auth.vault_of(request)
    text = " ".join(fields.get("note", "").split())[:500]
    try:
        if outcome == "done":
            incidents(request).complete_task(incident_id, task_id, note=text or "done on the dashboard", by=who.name)
            what = f"incident {incident_id} task {task_id} done"
        elif outcome == "not-applicable":
            incidents(request).skip_task(incident_id, task_id, text, by=who.name)
            what = f"incident {incident_id} task {task_id} not applicable: {text}"
        else:
            return not_found(request, who, f"no task action {outcome[:32]!r}")
    except KeyguardError as exc:
        vault.record(
            who, "incident.task", "denied", None, None, f"incident {incident_id} task {task_id}: {exc.message}"
        )
        return _failed(request, who, exc)
    vault.record(who, "incident.task", "ok", None, None, what)
    return _redirect(request, f"/incidents/{incident_id}#phases-title")


@router.get("/incidents/{incident_id}/report.{fmt}/download", name="web.report.download")
def report_download(
    request: Request, incident_id: int, fmt: str, lang: str = Query(default="en", pattern="^(en|zh)$")
) -> Response:
    """The incident report as a file (Markdown, HTML or PDF), as ``keyguard incident report`` writes it; audited."""
    who = viewer(request, "incident.read", audit=False)
    if isinstance(who, HTMLResponse):
        return who
    if fmt not in REPORT_TYPES:
        return not_found(request, who, f"no report format {fmt[:16]!r}: md, html or pdf")
    from keyguard.incident.report.render import render_report
    from keyguard.incident.report.sources import gather_report_data

    try:
        data = gather_report_data(incidents(request), incident_id)
    except NotFoundError:
        return not_found(request, who, f"There is no incident {incident_id}.")
    body = render_report(data, fmt, lang)
    auth.vault_of(request).record(who, "incident.report", "ok", None, None, f"incident {incident_id} {fmt} {lang}")
    name = f"incident-{incident_id}-report-{lang}.{fmt}"
    return Response(
        body,
        media_type=REPORT_TYPES[fmt],
        headers={**headers("default-src 'none'; sandbox"), "Content-Disposition": f'attachment; filename="{name}"'},
    )


# ------------------------------------------------------------------------------ WebAuthn enrolment


@router.get("/security", name="web.security", response_class=HTMLResponse)
def security_page(request: Request) -> Response:
    """The person's second factors: enrolled security keys and passkeys, and enrolling another."""
    who = viewer(request)
    if isinstance(who, HTMLResponse):
        return who
    engine = auth.vault_of(request).engine
    keys = factors.service(request).credentials(who.client_id) if who.client_id is not None else []
    rows = [
        {**k, "created": views.short_time(k["created_at"]), "used": views.short_time(k["last_used_at"], "never")}
        for k in keys
    ]
    enrolled = factors.enrolled(engine, who.client_id) if who.client_id is not None else ()
    return render(
        request,
        "security.html.j2",
        principal=who,
        nav="security",
        title="Second factors",
        keys=rows,
        has_totp=factors.TOTP in enrolled,
        can_enrol=who.client_id is not None,
    )


def _json_acting(request: Request, body: dict[str, Any] | None, gate: bool = True) -> Principal | JSONResponse:
    """The signed-in person of a JSON call with the CSRF header (``gate``: past the sign-in factor)."""
    if body is None:
        return _json_response({"error": "the request body is not a JSON object (or is too large)"}, 400)
    if not auth.same_origin(request):
        return _json_response({"error": "cross-site request refused"}, 403)
    who = auth.authenticate(request)
    if isinstance(who, auth.Refusal):
        return _json_response({"error": who.reason}, who.status)
    if gate and factors.sign_in_pending(request, who):
        return _json_response({"error": "finish signing in with your second factor first"}, 401)
    if not auth.csrf_ok(request, None):
        auth.vault_of(request).record(who, "web.action", "denied", None, None, f"{request.url.path}: {_CSRF_REFUSED}")
        return _json_response({"error": _CSRF_REFUSED}, 403)
    return who


@router.post("/webauthn/register/options", name="web.webauthn.register_options")
async def register_options(request: Request) -> Response:
    """Start enrolling an authenticator: the creation options (JSON) with a fresh challenge."""
    body = await _json(request)
    return await run_in_threadpool(_register_options, request, body)


def _register_options(request: Request, body: dict[str, Any] | None) -> Response:
    who = _json_acting(request, body)
    if isinstance(who, JSONResponse):
        return who
    try:
        options = factors.service(request).registration_options(who, factors.session_of(request))
    except KeyguardError as exc:
        return _json_response({"error": exc.message}, 400)
    return _json_response({"publicKey": json.loads(options)})


@router.post("/webauthn/register", name="web.webauthn.register")
async def register(request: Request) -> Response:
    """Finish enrolling: check the authenticator's answer and keep its public key (audited)."""
    body = await _json(request)
    return await run_in_threadpool(_register, request, body)


def _register(request: Request, body: dict[str, Any] | None) -> Response:
    who = _json_acting(request, body)
    if isinstance(who, JSONResponse):
        return who
    assert body is not None
    first = who.client_id is not None and not factors.enrolled(auth.vault_of(request).engine, who.client_id)
    try:
        row_id = factors.service(request).register(
            who, factors.session_of(request), body.get("credential") or {}, str(body.get("name") or "security key")
        )
    except KeyguardError as exc:
        return _json_response({"error": exc.message}, 400)
    if first:
        factors.mark_verified(request, who, factors.WEBAUTHN)  # this session just proved the new key
    return _json_response({"ok": True, "id": row_id})


@router.post("/webauthn/assert/options", name="web.webauthn.assert_options")
async def assert_options(request: Request) -> Response:
    """Start an assertion for ``{"purpose": "login" | "key.compromise:NAME:VERSION"}`` (JSON options)."""
    body = await _json(request)
    return await run_in_threadpool(_assert_options, request, body)


def _assert_options(request: Request, body: dict[str, Any] | None) -> Response:
    purpose = str((body or {}).get("purpose") or "")
    if purpose != factors.LOGIN_PURPOSE and not purpose.startswith("key.compromise:"):
        return _json_response({"error": "unknown purpose"}, 400)
    who = _json_acting(request, body, gate=purpose != factors.LOGIN_PURPOSE)
    if isinstance(who, JSONResponse):
        return who
    try:
        options = factors.service(request).authentication_options(who, factors.session_of(request), purpose)
    except KeyguardError as exc:
        return _json_response({"error": exc.message}, 400)
    return _json_response({"publicKey": json.loads(options)})


# ------------------------------------------------------------------------------ sign-in second factor


@router.post("/login/second-factor", name="web.login.second_factor")
async def login_second_factor(request: Request) -> Response:
    """Finish signing in with a WebAuthn assertion (purpose ``login``) or a TOTP code."""
    fields = await _form(request)
    if fields is None:
        return await run_in_threadpool(_too_large, request)
    return await run_in_threadpool(_login_second_factor, request, fields)


def _login_second_factor(request: Request, fields: dict[str, str]) -> Response:
    if not auth.same_origin(request):
        return refused(request, auth.Refusal(403, "cross-site sign-in refused", had_credential=True))
    who = auth.authenticate(request)
    if isinstance(who, auth.Refusal):
        return refused(request, who)
    vault = auth.vault_of(request)
    next_path = safe_next(fields.get("next") or "/")
    if not auth.csrf_ok(request, fields.get(auth.CSRF_FIELD)):
        vault.record(who, "web.login", "denied", None, None, f"second factor: {_CSRF_REFUSED}")
        return refused(request, auth.Refusal(403, _CSRF_REFUSED, had_credential=True))
    available = factors.sign_in_pending(request, who)
    if not available:
        return _redirect(request, next_path)
    try:
        _strong, factor = factors.check_factor(request, who, factors.LOGIN_PURPOSE, fields)
    except RefusedError as exc:
        vault.record(who, "web.login", "denied", None, None, f"second factor: {exc.message}")
        return second_factor_page(request, who, available, error=exc.message)
    factors.mark_verified(request, who, factor)
    vault.record(who, "web.login", "ok", None, None, f"dashboard sign-in second factor ({factor})")
    return _redirect(request, next_path)
