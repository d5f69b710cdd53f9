"""The dashboard's pages over a populated vault, on SQLite and PostgreSQL (TestClient)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from keyguard.audit.reading import iter_events
from keyguard.vault.clients import ClientService
from keyguard.vault.principal import local_admin
from keyguard.web import auth
from tests.web.scene import ALERT_TITLE, RISK_FACTOR, Scene, make_app

PAGES = ("/", "/keys", "/alerts", "/audit")


def bearer(token: str) -> dict[str, str]:
    """Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def assert_no_secret(html: str, scene: Scene) -> None:
    """No bearer token (nor anything shaped like one) appears in the page."""
    for token in scene.tokens.values():
        assert token not in html
        assert token[4:20] not in html
    assert "kgt_" not in html


def text_of(html: str) -> str:
    """The visible text of a page, whitespace collapsed (good enough for assertions)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_overview_shows_open_incidents_deadlines_keys_and_alerts(web: TestClient, scene: Scene) -> None:
    page = web.get("/", headers=bearer(scene.tokens["auditor"]))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    body = text_of(page.text)
    assert f"#{scene.incident_id} Payment key pushed to a public repository" in body
    assert "Old false alarm" not in body  # closed incidents are not on the overview
    assert 'class="badge sev-high"' in page.text
    assert 'class="badge status-open"' in page.text
    # 80 h after detection the GDPR 72 h notice is overdue, and the overview says so.
    assert re.search(r"gdpr-art33</strong> <time class=\"countdown cd-overdue\"", page.text)
    assert "overdue by 8h 00m" in body
    assert re.search(r'<span class="n">1</span> compromised', page.text)
    assert re.search(r'<span class="n">2</span> active', page.text)
    assert "3 keys" not in body and "2 keys, 1 compromised" in body
    assert re.search(r'<span class="stat-value">1</span>\s*<span class="stat-label">open alert</span>', page.text)
    assert 'data-refresh="30"' in page.text
    assert "web-auditor" in body and "auditor" in body
    assert_no_secret(page.text, scene)


def test_incident_page_shows_phases_tasks_obligations_timeline_and_risk(web: TestClient, scene: Scene) -> None:
    page = web.get(f"/incidents/{scene.incident_id}", headers=bearer(scene.tokens["operator"]))
    assert page.status_code == 200
    body = text_of(page.text)
    assert "Contain and revoke (0-1 h)" in body
    assert "Mark the leaked key versions compromised" in body
    assert re.search(
        r'<tr class="task-done">\s*<td data-label="Task"><span class="task-title">Mark the leaked', page.text
    )
    assert "version 1 compromised" in body  # the task's note
    assert 'class="phase phase-overdue"' in page.text  # the contain phase still has open tasks, 79 h late
    assert "gdpr-art33" in body and "Lead supervisory authority" in body
    assert re.search(r'<tr class="ob-overdue">\s*<td data-label="Regulation"><strong>gdpr-art33', page.text)
    assert "Needs attention now" in body and "gdpr-art33 notice overdue by 8h 00m" in body
    assert re.search(
        r"\d+ tasks overdue: verify-dead, suspend-clients, start-regulatory-clocks, inform-owner and", body
    )
    assert "incident opened with playbook leaked-key" in body
    assert "task compromise-key done" in body
    assert RISK_FACTOR in body
    assert f'href="/incidents/{scene.incident_id}/report.html?lang=en"' in page.text
    assert f'href="/incidents/{scene.incident_id}/report.html?lang=zh"' in page.text
    assert "github.com/acme/shop commit 1a2b3c" in body
    assert_no_secret(page.text, scene)

    closed = web.get(f"/incidents/{scene.closed_incident_id}", headers=bearer(scene.tokens["operator"]))
    assert closed.status_code == 200 and 'class="badge status-closed"' in closed.text
    assert "Needs attention now" not in closed.text and "Not assessed yet." in closed.text

    missing = web.get("/incidents/999999", headers=bearer(scene.tokens["operator"]))
    assert missing.status_code == 404 and "There is no incident 999999." in missing.text


def test_report_renders_in_english_and_chinese(web: TestClient, scene: Scene) -> None:
    headers = bearer(scene.tokens["auditor"])
    en = web.get(f"/incidents/{scene.incident_id}/report.html?lang=en", headers=headers)
    assert en.status_code == 200
    assert en.headers["content-disposition"] == f'inline; filename="incident-{scene.incident_id}-report-en.html"'
    assert "script-src" not in en.headers["content-security-policy"]  # no script may run in a report
    assert "Payment key pushed to a public repository" in en.text
    assert RISK_FACTOR in en.text
    zh = web.get(f"/incidents/{scene.incident_id}/report.html?lang=zh", headers=headers)
    assert zh.status_code == 200 and "暴露后该密钥被3个陌生地址使用" in zh.text
    assert web.get(f"/incidents/{scene.incident_id}/report.html?lang=fr", headers=headers).status_code == 422
    assert web.get(f"/incidents/{scene.incident_id}/report.html").status_code == 401
    assert_no_secret(en.text + zh.text, scene)


def test_keys_page_lists_versions_and_marks_compromised(web: TestClient, scene: Scene) -> None:
    page = web.get("/keys", headers=bearer(scene.tokens["auditor"]))
    assert page.status_code == 200
    html = page.text
    assert 'class="panel key key-compromised" id="key-pay"' in html
    assert 'class="panel key" id="key-web-sign"' in html
    assert html.index('id="key-pay"') < html.index('id="key-web-sign"')  # compromised keys first
    assert re.search(r'<tr class="version-compromised">\s*<td data-label="Version">v1</td>', html)
    assert re.search(r'<tr class="version-active">\s*<td data-label="Version">v2</td>', html)
    assert "ed25519" in html and "aes256-gcm" in html
    pay = scene.vault.key_info("pay")
    assert pay.versions[1].fingerprint[:23] in html
    assert_no_secret(html, scene)


def test_alerts_page_lists_open_alerts(web: TestClient, scene: Scene) -> None:
    page = web.get("/alerts", headers=bearer(scene.tokens["auditor"]))
    assert page.status_code == 200
    body = text_of(page.text)
    assert ALERT_TITLE in body and "compromised-key-use" in body
    assert f'href="/incidents/{scene.incident_id}"' in page.text
    assert "203.0.113.9" not in page.text  # details are not dumped into the page
    assert_no_secret(page.text, scene)


def test_audit_page_shows_events_and_chain_status_and_is_itself_audited(web: TestClient, scene: Scene) -> None:
    page = web.get("/audit", headers=bearer(scene.tokens["auditor"]))
    assert page.status_code == 200
    body = text_of(page.text)
    assert 'class="chain chain-ok"' in page.text and "Hash chain verified:" in body
    assert "key.compromise" in body and "leaked in a public repository" in body
    assert body.count("client.token") >= 4
    assert_no_secret(page.text, scene)
    reads = [e for e in iter_events(scene.vault.engine) if e["op"] == "audit.read" and e["actor"] == "web-auditor"]
    assert len(reads) == 1 and reads[0]["result"] == "ok"

    with scene.vault.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET reason = 'rewritten' WHERE id = 2"))
    broken = web.get("/audit", headers=bearer(scene.tokens["auditor"]))
    assert broken.status_code == 200
    assert 'class="chain chain-broken"' in broken.text and "audit chain broken at event 2" in broken.text


def test_login_sets_a_safe_cookie_and_every_page_renders_without_the_token(web: TestClient, scene: Scene) -> None:
    form = web.get("/login?next=/keys")
    assert form.status_code == 200 and 'name="token" type="password"' in form.text
    assert 'name="next" value="/keys"' in form.text

    bad = web.post("/login", data={"token": "kgt_not-a-real-token", "next": "/keys"})
    assert bad.status_code == 401 and "invalid or expired token" in bad.text
    assert "set-cookie" not in bad.headers
    assert "kgt_not-a-real-token" not in bad.text

    token = scene.tokens["operator"]
    ok = web.post("/login", data={"token": token, "next": "/keys"})
    assert ok.status_code == 303 and ok.headers["location"] == "/keys"
    cookie = ok.headers["set-cookie"]
    assert cookie.startswith(f"{auth.COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here; see the https test below
    assert token not in ok.text

    for path in (*PAGES, f"/incidents/{scene.incident_id}"):
        page = web.get(path)
        assert page.status_code == 200, path
        assert_no_secret(page.text, scene)
    logins = [e for e in iter_events(scene.vault.engine) if e["op"] == "web.login"]
    assert [(e["actor"], e["result"]) for e in logins] == [("web-operator", "ok")]

    out = web.post("/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert f'{auth.COOKIE}=""' in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]
    web.cookies.clear()
    assert web.get("/").status_code == 401


def test_cookie_is_secure_over_https_and_cross_site_login_is_refused(scene: Scene) -> None:
    with TestClient(make_app(scene.vault), base_url="https://dash.example", follow_redirects=False) as client:
        ok = client.post("/login", data={"token": scene.tokens["auditor"]})
        assert ok.status_code == 303 and ok.headers["location"] == "/"
        assert "Secure" in ok.headers["set-cookie"]
        evil = client.post(
            "/login", data={"token": scene.tokens["auditor"]}, headers={"Origin": "https://evil.example"}
        )
        assert evil.status_code == 403 and "set-cookie" not in evil.headers
        offsite = client.post("/login", data={"token": scene.tokens["auditor"], "next": "//evil.example/x"})
        assert offsite.headers["location"] == "/"


def test_refusals_401_and_403(web: TestClient, scene: Scene, admin: object) -> None:
    anonymous = web.get("/")
    assert anonymous.status_code == 401
    assert 'name="next" value="/"' in anonymous.text and "Sign in" in anonymous.text
    assert anonymous.headers["www-authenticate"].startswith("Bearer")

    report = web.get(f"/incidents/{scene.incident_id}/report.html?lang=zh")
    assert report.status_code == 401
    assert f'name="next" value="/incidents/{scene.incident_id}/report.html?lang=zh"' in report.text

    web.cookies.set(auth.COOKIE, "kgt_expired-or-forged")
    stale = web.get("/keys")
    assert stale.status_code == 401 and "invalid or expired token" in stale.text
    assert f'{auth.COOKIE}=""' in stale.headers["set-cookie"]  # a bad cookie is forgotten
    web.cookies.clear()

    service = web.get("/", headers=bearer(scene.tokens["service"]))
    assert service.status_code == 403 and "role service may not view the dashboard" in service.text

    ClientService(scene.vault).set_status(local_admin(), "web-auditor", "suspended")
    suspended = web.get("/audit", headers=bearer(scene.tokens["auditor"]))
    assert suspended.status_code == 403 and "suspended" in suspended.text

    for page in (anonymous, stale, service, suspended):
        assert_no_secret(page.text, scene)
        assert "kgt_expired-or-forged" not in page.text
    denied = [(e["op"], e["actor"]) for e in iter_events(scene.vault.engine) if e["result"] == "denied"]
    assert ("auth", "anonymous") in denied  # the forged cookie
    assert ("web.view", "web-service") in denied


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_create_app_and_include_together(scene: Scene) -> None:
    """The lead's wiring: ``create_app`` then ``include``; the API keeps working beside the pages."""
    app = make_app(scene.vault)
    assert app.url_path_for("web.overview") == "/"
    assert app.url_path_for("web.incident", incident_id=3) == "/incidents/3"
    assert app.url_path_for("web.report", incident_id=3) == "/incidents/3/report.html"
    for name, path in (("web.keys", "/keys"), ("web.alerts", "/alerts"), ("web.audit", "/audit")):
        assert app.url_path_for(name) == path
    assert app.url_path_for("web.static", name="dashboard.css") == "/static/dashboard.css"
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        keys = client.get("/v1/keys", headers=bearer(scene.tokens["admin"]))
        assert keys.status_code == 200 and {k["name"] for k in keys.json()} == {"pay", "web-sign"}
        assert client.get("/", headers=bearer(scene.tokens["admin"])).status_code == 200
        schema = client.get("/openapi.json").json()
        assert "/keys" not in schema["paths"] and "/v1/keys" in schema["paths"]
        css = client.get("/static/dashboard.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert client.get("/static/dashboard.js").headers["content-type"].startswith("text/javascript")
        assert client.get("/static/..%2Fauth.py").status_code == 404
        assert client.get("/static/routes.py").status_code == 404
        # The API itself never accepts the dashboard cookie (so it cannot be used for CSRF against /v1).
        client.cookies.set(auth.COOKIE, scene.tokens["admin"])
        assert client.get("/v1/keys").status_code == 401


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_router_alone_on_a_bare_app(scene: Scene) -> None:
    """Without ``create_app`` (no token cache, no client service), the router still authenticates."""
    from fastapi import FastAPI

    from keyguard.web import router

    app = FastAPI()
    app.state.vault = scene.vault
    app.include_router(router)
    with TestClient(app, follow_redirects=False) as client:
        page = client.get("/keys", headers=bearer(scene.tokens["auditor"]))
        assert page.status_code == 200 and 'id="key-pay"' in page.text
        assert client.get("/static/dashboard.css").status_code == 200
        assert client.get("/keys", headers=bearer(scene.tokens["service"])).status_code == 403
        assert client.get("/keys").status_code == 401
