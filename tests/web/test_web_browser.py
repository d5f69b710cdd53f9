"""The dashboard in a real browser: uvicorn on a free port, Debian's Chromium driven by Playwright.

Never runs ``playwright install``: it uses /usr/lib/chromium/chromium (``apt-get install
chromium``) and skips with the reason when Chromium or the playwright package is missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault
from keyguard.web import auth
from tests.web.browser import CHROMIUM_ARGS, STEP_TIMEOUT_MS, serve_dashboard
from tests.web.scene import RISK_FACTOR, Scene

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


@pytest.fixture
def server(vault: Vault, admin: Principal) -> Iterator[tuple[str, Scene]]:
    """uvicorn serving the API app with the dashboard, in a thread, on a free localhost port."""
    with serve_dashboard(vault, admin) as served:
        yield served


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sign_in_then_overview_incident_report(
    chromium: tuple[str, ModuleType], server: tuple[str, Scene], tmp_path: Path
) -> None:
    """Sign in with a token, then overview → incident → report, as a responder would."""
    executable, sync_api = chromium
    base, scene = server
    token = scene.tokens["operator"]
    title = "Payment key pushed to a public repository"

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(STEP_TIMEOUT_MS)
            context.set_default_navigation_timeout(STEP_TIMEOUT_MS)
            page = context.new_page()
            errors: list[str] = []  # console errors, e.g. a CSP violation
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

            # Unauthenticated: the sign-in form, with a 401.
            response = page.goto(base + "/")
            assert response is not None and response.status == 401
            page.get_by_label("Client token").fill(token)
            page.screenshot(path=str(tmp_path / "login.png"))
            with page.expect_navigation():
                page.get_by_role("button", name="Sign in").click()
            assert page.url == base + "/", page.inner_text("main")
            sync_api.expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
            sync_api.expect(page.get_by_role("link", name=f"#{scene.incident_id} {title}")).to_be_visible()
            sync_api.expect(page.locator(".overdue-list")).to_contain_text("gdpr-art33")
            assert "web-operator" in page.locator(".who").inner_text()
            # The script ran under the page's CSP: it reveals the pause button of the auto-refresh.
            sync_api.expect(page.get_by_role("button", name="Pause refresh")).to_be_visible()

            # The session cookie is HttpOnly and SameSite=Strict: page scripts cannot read it.
            cookies = {c["name"]: c for c in context.cookies()}
            assert cookies[auth.COOKIE]["httpOnly"] is True
            assert cookies[auth.COOKIE]["sameSite"] == "Strict"
            assert page.evaluate("document.cookie") == ""
            assert token not in page.content()
            page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

            # Overview → incident.
            with page.expect_navigation():
                page.get_by_role("link", name=f"#{scene.incident_id} {title}").click()
            assert page.url == f"{base}/incidents/{scene.incident_id}"
            sync_api.expect(page.get_by_role("heading", name="Contain and revoke (0-1 h)")).to_be_visible()
            sync_api.expect(page.get_by_text(RISK_FACTOR)).to_be_visible()
            sync_api.expect(page.locator("tr.ob-overdue").first).to_contain_text("gdpr-art33")
            # The countdown script keeps the overdue text live (it is re-rendered every second).
            sync_api.expect(page.locator("tr.ob-overdue time.countdown").first).to_have_text(
                re.compile(r"^overdue by \d")
            )
            assert token not in page.content()
            page.screenshot(path=str(tmp_path / "incident.png"), full_page=True)

            # Incident → report (the "view in browser" link; the language links download the file).
            with page.expect_navigation():
                page.get_by_role("link", name="view in browser").click()
            assert page.url == f"{base}/incidents/{scene.incident_id}/report.html?lang=en"
            sync_api.expect(page.locator("body")).to_contain_text(title)
            sync_api.expect(page.locator("body")).to_contain_text(RISK_FACTOR)
            # The embedded chart (a data: URL) is allowed by the report's CSP and decoded.
            assert page.locator("img.chart").evaluate("img => img.complete && img.naturalWidth > 0")
            assert token not in page.content()
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            context.close()
            # The 401 of the first visit is logged by Chromium as a failed resource; nothing else may be.
            assert [e for e in errors if "401" not in e] == []
        finally:
            browser.close()

    for name in ("login", "overview", "incident", "report"):
        assert (tmp_path / f"{name}.png").stat().st_size > 5_000
