"""Issue 13 point 13: acknowledge an alert from the dashboard (same-origin form post, CSRF token, alert.write)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from keyguard.monitor.alerts import list_alerts
from keyguard.web import auth
from tests.web.scene import Scene


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_operator_acknowledges_an_alert_from_the_alerts_page(web: TestClient, scene: Scene) -> None:
    (alert,) = list_alerts(scene.vault.engine, status="open")
    page = web.get("/alerts", headers=_bearer(scene.tokens["operator"]))
    assert f'action="/alerts/{alert["id"]}/ack"' in page.text
    viewer = web.get("/alerts", headers=_bearer(scene.tokens["auditor"]))
    assert "/ack" not in viewer.text  # an auditor may read alerts, not acknowledge them
    refused = web.post(f"/alerts/{alert['id']}/ack", headers=_bearer(scene.tokens["auditor"]))
    assert refused.status_code == 403
    cross = web.post(
        f"/alerts/{alert['id']}/ack",
        headers={**_bearer(scene.tokens["operator"]), "Sec-Fetch-Site": "cross-site", "Origin": "https://evil"},
    )
    assert cross.status_code == 403
    assert list_alerts(scene.vault.engine, status="open")
    operator = {**_bearer(scene.tokens["operator"]), "Sec-Fetch-Site": "same-origin"}
    assert web.post(f"/alerts/{alert['id']}/ack", headers=operator).status_code == 403  # no CSRF token
    wrong = web.post(f"/alerts/{alert['id']}/ack", headers=operator, data={"csrf": "x" * 43})
    assert wrong.status_code == 403
    assert list_alerts(scene.vault.engine, status="open")
    done = web.post(
        f"/alerts/{alert['id']}/ack", headers=operator, data={"csrf": auth.csrf_token(scene.tokens["operator"])}
    )
    assert done.status_code == 303 and done.headers["location"].endswith("/alerts")
    assert list_alerts(scene.vault.engine, status="open") == []
    (acked,) = list_alerts(scene.vault.engine, status="acknowledged")
    assert acked["acknowledged_by"] == "web-operator"
