"""Dashboard actions over HTTP (TestClient, SQLite and PostgreSQL): WebAuthn enrolment and sign-in,
containing a key version with a fresh second factor, CSRF refusals, tasks, alert groups, report downloads.

The browser drives the same flows in test_web_webauthn_browser.py; here a software
authenticator answers, so every refusal can be checked precisely.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient

from keyguard.audit.reading import iter_events
from keyguard.errors import KeyguardError
from keyguard.incident.service import IncidentService
from keyguard.monitor.alerts import list_alerts
from keyguard.vault.clients import ClientService
from keyguard.vault.principal import Principal
from keyguard.web import auth
from tests.web.scene import Scene, make_app
from tests.web.soft_authenticator import SoftAuthenticator

BASE = "http://localhost:8200"
SAME = {"Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def local(scene: Scene) -> Iterator[TestClient]:
    """A TestClient whose pages are on http://localhost:8200 (so WebAuthn's rp id localhost applies)."""
    with TestClient(make_app(scene.vault), base_url=BASE, follow_redirects=False) as client:
        yield client


def _sign_in(client: TestClient, token: str) -> str:
    client.cookies.clear()
    done = client.post("/login", data={"token": token, "next": "/"}, headers=SAME)
    assert done.status_code == 303, done.text
    sid = client.cookies.get(auth.SID_COOKIE)
    assert sid and len(sid) >= 40
    return auth.csrf_token(token, sid)


def _json_post(client: TestClient, path: str, csrf: str, body: dict[str, Any]) -> Any:
    return client.post(path, json=body, headers={**SAME, "X-CSRF-Token": csrf})


def _enrol(client: TestClient, csrf: str) -> SoftAuthenticator:
    options = _json_post(client, "/webauthn/register/options", csrf, {})
    assert options.status_code == 200, options.text
    key = SoftAuthenticator(origin=BASE)
    done = _json_post(
        client, "/webauthn/register", csrf, {"credential": key.register(options.json()["publicKey"]), "name": "yubikey"}
    )
    assert done.status_code == 200 and done.json()["ok"], done.text
    return key


def _assertion(client: TestClient, csrf: str, key: SoftAuthenticator, purpose: str, origin: str = BASE) -> str:
    import json

    options = _json_post(client, "/webauthn/assert/options", csrf, {"purpose": purpose})
    assert options.status_code == 200, options.text
    return json.dumps(key.assert_(options.json()["publicKey"], origin=origin))


def _events(scene: Scene, op: str) -> list[dict[str, Any]]:
    return [e for e in iter_events(scene.vault.engine) if e["op"] == op]


def test_enrol_sign_in_with_key_and_contain_a_version(local: TestClient, scene: Scene) -> None:
    token = scene.tokens["operator"]
    csrf = _sign_in(local, token)
    assert local.get("/security").status_code == 200
    assert _json_post(local, "/webauthn/register/options", "wrong", {}).status_code == 403
    key = _enrol(local, csrf)
    assert "yubikey" in local.get("/security").text

    # A new session of the same person: every page waits for the second factor.
    csrf = _sign_in(local, token)
    pending = local.get("/keys")
    assert pending.status_code == 401 and "Use security key" in pending.text
    assert local.get("/").status_code == 401
    assertion = _assertion(local, csrf, key, "login")
    no_csrf = local.post("/login/second-factor", data={"assertion": assertion, "next": "/keys"}, headers=SAME)
    assert no_csrf.status_code == 403
    phished = _assertion(local, csrf, key, "login", origin="http://localhost.evil.example")
    refused = local.post("/login/second-factor", data={"assertion": phished, "csrf": csrf}, headers=SAME)
    assert refused.status_code == 401 and "origin" in refused.text
    done = local.post(
        "/login/second-factor", data={"assertion": assertion, "csrf": csrf, "next": "/keys"}, headers=SAME
    )
    assert done.status_code == 303 and done.headers["location"] == "/keys"
    page = local.get("/keys")
    assert page.status_code == 200 and 'action="/keys/pay/versions/2/compromise"' in page.text

    vault = scene.vault
    ciphertext, version = vault.encrypt(Principal(name="app", role="admin", mfa=True), "pay", b"card data")
    assert version == 2
    path = "/keys/pay/versions/2/compromise"
    assert local.post(path, data={"reason": "leaked"}, headers=SAME).status_code == 403  # no CSRF token
    assert local.post(path, data={"reason": "leaked", "csrf": "x" * 43}, headers=SAME).status_code == 403
    assert local.post(path, data={"reason": "leaked", "csrf": csrf}, headers=SAME).status_code == 403  # no factor
    other = _assertion(local, csrf, key, "key.compromise:pay:1")  # an assertion for another version
    assert local.post(path, data={"csrf": csrf, "assertion": other}, headers=SAME).status_code == 403
    assert vault.key_info("pay").versions[2].state == "active"

    assertion = _assertion(local, csrf, key, "key.compromise:pay:2")
    contained = local.post(path, data={"csrf": csrf, "assertion": assertion, "reason": "leaked"}, headers=SAME)
    assert contained.status_code == 303 and contained.headers["location"] == "/keys#key-pay"
    assert vault.key_info("pay").versions[2].state == "compromised"
    replay = local.post(path, data={"csrf": csrf, "assertion": assertion}, headers=SAME)
    assert replay.status_code == 403
    with pytest.raises(KeyguardError):
        vault.decrypt(Principal(name="app", role="admin", mfa=True), ciphertext)

    compromise = _events(scene, "key.compromise")
    ok = [e for e in compromise if e["result"] == "ok" and e["key"] == "pay" and e["version"] == 2]
    assert ok and ok[-1]["actor"] == "web-operator" and "webauthn" in (ok[-1]["reason"] or "")
    assert sum(1 for e in compromise if e["result"] == "denied" and e["actor"] == "web-operator") >= 3
    assert any(e["result"] == "denied" for e in _events(scene, "web.action"))  # the CSRF refusals
    assert any("second factor (webauthn)" in (e["reason"] or "") for e in _events(scene, "web.login"))


def test_a_bare_bearer_header_never_passes_the_second_factor(local: TestClient, scene: Scene) -> None:
    token = scene.tokens["operator"]
    csrf = _sign_in(local, token)
    key = _enrol(local, csrf)
    assert local.get("/keys").status_code == 200  # this sign-in enrolled the key: it proved it
    local.cookies.clear()
    header = {"Authorization": f"Bearer {token}", **SAME}
    assert local.get("/keys", headers=header).status_code == 401  # no sign-in: the second factor is pending
    assert key.counter == 1


def test_contain_with_a_totp_code_once(local: TestClient, scene: Scene, admin: Principal) -> None:
    secret, _ = ClientService(scene.vault).enroll_mfa(admin, "web-admin")
    token = scene.tokens["admin"]
    csrf = _sign_in(local, token)
    assert local.get("/keys").status_code == 401  # TOTP enrolled: the sign-in needs a code first
    code = pyotp.TOTP(secret).now()
    assert local.post("/login/second-factor", data={"otp": code, "csrf": csrf}, headers=SAME).status_code == 303
    path = "/keys/web-sign/versions/1/compromise"
    reused = local.post(path, data={"csrf": csrf, "otp": code}, headers=SAME)
    assert reused.status_code == 403  # each code works once
    assert scene.vault.key_info("web-sign").versions[1].state == "active"


def test_an_auditor_may_not_act(local: TestClient, scene: Scene) -> None:
    csrf = _sign_in(local, scene.tokens["auditor"])
    page = local.get("/keys")
    assert page.status_code == 200 and "/compromise" not in page.text
    refused = local.post("/keys/pay/versions/2/compromise", data={"csrf": csrf}, headers=SAME)
    assert refused.status_code == 403
    task = local.post(f"/incidents/{scene.incident_id}/tasks/notify-owner/done", data={"csrf": csrf}, headers=SAME)
    assert task.status_code == 403


def test_tasks_alert_groups_and_report_downloads(web: TestClient, scene: Scene) -> None:
    token = scene.tokens["operator"]
    headers = {"Authorization": f"Bearer {token}", **SAME}
    csrf = auth.csrf_token(token)
    incidents = IncidentService(scene.vault.engine, scene.vault.clock)
    open_tasks = [t.id for t in incidents.get(scene.incident_id).tasks if t.done_at is None]
    first, second = open_tasks[:2]
    page = web.get(f"/incidents/{scene.incident_id}", headers=headers)
    assert f'/tasks/{first}/done"' in page.text and 'data-download="pdf"' in page.text
    base = f"/incidents/{scene.incident_id}/tasks"
    assert web.post(f"{base}/{first}/done", headers=headers, data={"note": "x"}).status_code == 403  # no CSRF
    done = web.post(f"{base}/{first}/done", headers=headers, data={"csrf": csrf, "note": "owner told"})
    assert done.status_code == 303
    again = web.post(f"{base}/{first}/done", headers=headers, data={"csrf": csrf, "note": "twice"})
    assert again.status_code == 409
    no_reason = web.post(f"{base}/{second}/not-applicable", headers=headers, data={"csrf": csrf})
    assert no_reason.status_code == 400
    skipped = web.post(f"{base}/{second}/not-applicable", headers=headers, data={"csrf": csrf, "note": "no users"})
    assert skipped.status_code == 303
    tasks = {t.id: t for t in incidents.get(scene.incident_id).tasks}
    assert tasks[first].done_by == "web-operator" and tasks[first].note == "owner told"
    assert tasks[second].done_by == "web-operator" and tasks[second].note == "no users"
    assert {e["actor"] for e in _events(scene, "incident.task") if e["result"] == "ok"} == {"web-operator"}

    (alert,) = list_alerts(scene.vault.engine, status="open")
    assert web.post(f"/alerts/{alert['id']}/ack-group", headers=headers).status_code == 403
    grouped = web.post(f"/alerts/{alert['id']}/ack-group", headers=headers, data={"csrf": csrf})
    assert grouped.status_code == 303 and list_alerts(scene.vault.engine, status="open") == []
    assert any("group of" in (e["reason"] or "") for e in _events(scene, "alert.ack"))

    for fmt, magic in (("md", b"#"), ("html", b"<"), ("pdf", b"%PDF")):
        got = web.get(f"/incidents/{scene.incident_id}/report.{fmt}/download?lang=en", headers=headers)
        assert got.status_code == 200 and got.content.startswith(magic)
        assert got.headers["content-disposition"] == (
            f'attachment; filename="incident-{scene.incident_id}-report-en.{fmt}"'
        )
    assert web.get(f"/incidents/{scene.incident_id}/report.exe/download", headers=headers).status_code == 404
    many = "&".join(f"f{i}=x" for i in range(40))
    crowded = web.post(
        f"{base}/{second}/done", headers={**headers, "Content-Type": "application/x-www-form-urlencoded"}, content=many
    )
    assert crowded.status_code == 413
    assert web.post(f"{base}/{second}/done", headers=headers, content=b"x" * 40_000).status_code == 413
    assert len([e for e in _events(scene, "incident.report") if e["actor"] == "web-operator"]) == 3
