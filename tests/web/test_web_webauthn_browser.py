"""WebAuthn in a real browser: Chromium's virtual authenticator (CDP) enrols, signs in and contains a key.

Headless Debian Chromium driven by Playwright (never ``playwright install``); uvicorn on
127.0.0.1, pages opened as http://localhost:PORT (a secure context, rp id ``localhost``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from keyguard.audit.reading import iter_events
from keyguard.errors import KeyguardError
from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault
from tests.web.browser import CHROMIUM_ARGS, STEP_TIMEOUT_MS, serve_dashboard
from tests.web.scene import Scene

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

VIRTUAL_AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


@pytest.fixture
def localhost_server(vault: Vault, admin: Principal) -> Iterator[tuple[str, Scene]]:
    """uvicorn with the dashboard on 127.0.0.1:PORT, addressed as http://localhost:PORT."""
    with serve_dashboard(vault, admin, "localhost") as served:
        yield served


def _sign_in(page: Any, sync_api: ModuleType, base: str, token: str) -> None:
    page.goto(base + "/login")
    page.get_by_label("Client token").fill(token)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_enrol_sign_in_and_contain_with_a_virtual_authenticator(
    chromium: tuple[str, ModuleType], localhost_server: tuple[str, Scene], tmp_path: Path
) -> None:
    executable, sync_api = chromium
    base, scene = localhost_server
    vault = scene.vault
    token = scene.tokens["operator"]
    app = Principal(name="app", role="admin", mfa=True)
    ciphertext, version = vault.encrypt(app, "pay", b"card data")
    assert version == 2

    with sync_api.sync_playwright() as pw:
        args = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP localhost 127.0.0.1"]
        browser = pw.chromium.launch(executable_path=executable, args=args, timeout=30_000)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(STEP_TIMEOUT_MS)
            context.set_default_navigation_timeout(STEP_TIMEOUT_MS)
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            cdp = context.new_cdp_session(page)
            cdp.send("WebAuthn.enable")
            authenticator = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": VIRTUAL_AUTHENTICATOR})
            authenticator_id = authenticator["authenticatorId"]

            # Enrol: the Security page runs navigator.credentials.create against the virtual key.
            _sign_in(page, sync_api, base, token)
            assert page.url == base + "/", page.inner_text("main")
            page.goto(base + "/security")
            page.get_by_label("Name of the new key").fill("virtual key")
            with page.expect_navigation():
                page.get_by_role("button", name="Enrol a security key").click()
            sync_api.expect(page.locator("table.webauthn-keys")).to_contain_text("virtual key")
            stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]
            assert len(stored) == 1
            page.screenshot(path=str(tmp_path / "security.png"), full_page=True)

            # Sign out and in again: the dashboard waits for the security key.
            with page.expect_navigation():
                page.get_by_role("button", name="Sign out").click()
            _sign_in(page, sync_api, base, token)
            sync_api.expect(page.get_by_role("heading", name="Second factor")).to_be_visible()
            page.screenshot(path=str(tmp_path / "second-factor.png"))
            with page.expect_navigation(url=base + "/"):
                page.get_by_role("button", name="Use security key").click()
            sync_api.expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()

            # The contain POST without a CSRF token, or without a fresh assertion, is refused.
            page.goto(base + "/keys")
            csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
            assert csrf
            target = base + "/keys/pay/versions/2/compromise"
            assert page.request.post(target, form={"reason": "no token"}).status == 403
            assert page.request.post(target, form={"csrf": csrf, "reason": "no key"}).status == 403
            assert vault.key_info("pay").versions[2].state == "active"

            # Contain pay v2 from the Keys page: the form asks the security key first.
            form = page.locator('form[data-webauthn-purpose="key.compromise:pay:2"]')
            form.get_by_placeholder("reason").fill("pushed to a public repository")
            with page.expect_navigation(url=base + "/keys#key-pay"):
                form.get_by_role("button", name="Contain v2").click()
            sync_api.expect(page.locator("#key-pay tr.version-compromised")).to_have_count(2)
            page.screenshot(path=str(tmp_path / "contained.png"), full_page=True)
            context.close()
            assert [e for e in errors if "401" not in e and "403" not in e] == []
        finally:
            browser.close()

    assert vault.key_info("pay").versions[2].state == "compromised"
    with pytest.raises(KeyguardError):
        vault.decrypt(app, ciphertext)  # the contained version is refused from now on
    events = list(iter_events(vault.engine))
    contained = [e for e in events if e["op"] == "key.compromise" and e["result"] == "ok" and e["version"] == 2]
    assert contained and contained[-1]["actor"] == "web-operator"
    assert "pushed to a public repository" in contained[-1]["reason"] and "webauthn" in contained[-1]["reason"]
    assert any(e["op"] == "client.webauthn" and e["result"] == "ok" for e in events)
    assert any(e["op"] == "web.login" and "second factor (webauthn)" in (e["reason"] or "") for e in events)
    for name in ("security", "second-factor", "contained"):
        assert (tmp_path / f"{name}.png").stat().st_size > 5_000


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_tasks_alerts_and_report_download_in_the_browser(
    chromium: tuple[str, ModuleType], localhost_server: tuple[str, Scene], tmp_path: Path
) -> None:
    """Mark a task done and another not applicable, acknowledge an alert group, download the PDF report."""
    from keyguard.incident.service import IncidentService
    from keyguard.monitor.alerts import list_alerts

    executable, sync_api = chromium
    base, scene = localhost_server
    incidents = IncidentService(scene.vault.engine, scene.vault.clock)
    first, second = [t.id for t in incidents.get(scene.incident_id).tasks if t.done_at is None][:2]

    with sync_api.sync_playwright() as pw:
        args = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP localhost 127.0.0.1"]
        browser = pw.chromium.launch(executable_path=executable, args=args, timeout=30_000)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            context.set_default_timeout(STEP_TIMEOUT_MS)
            page = context.new_page()
            _sign_in(page, sync_api, base, scene.tokens["operator"])
            page.goto(f"{base}/incidents/{scene.incident_id}")
            row = page.locator(f'form[aria-label="Task {first}"]')
            row.get_by_placeholder("note / reason").fill("owner told by phone")
            with page.expect_navigation():
                row.get_by_role("button", name="Done").click()
            row = page.locator(f'form[aria-label="Task {second}"]')
            row.get_by_placeholder("note / reason").fill("no customer data")
            with page.expect_navigation():
                row.get_by_role("button", name="Not applicable").click()
            sync_api.expect(page.locator(f'form[aria-label="Task {second}"]')).to_have_count(0)
            with page.expect_download() as info:
                page.locator('a[data-download="pdf"]').click()
            saved = tmp_path / info.value.suggested_filename
            info.value.save_as(saved)
            assert saved.name == f"incident-{scene.incident_id}-report-en.pdf"
            assert saved.read_bytes().startswith(b"%PDF")

            page.goto(base + "/alerts")
            with page.expect_navigation():
                page.get_by_role("button", name="Acknowledge group").click()
            sync_api.expect(page.get_by_text("No open alerts.")).to_be_visible()
            context.close()
        finally:
            browser.close()

    tasks = {t.id: t for t in incidents.get(scene.incident_id).tasks}
    assert tasks[first].note == "owner told by phone" and tasks[first].done_by == "web-operator"
    assert tasks[second].note == "no customer data" and tasks[second].done_by == "web-operator"
    assert list_alerts(scene.vault.engine, status="open") == []
    events = [e for e in iter_events(scene.vault.engine) if e["actor"] == "web-operator" and e["result"] == "ok"]
    assert {"incident.task", "incident.report", "alert.ack"} <= {e["op"] for e in events}
