"""Every entry point is audited: incident API calls, dashboard views, requests refused early (both backends)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from keyguard.api import create_app
from keyguard.store.tables import AuditEvent
from keyguard.vault.clients import ClientService
from keyguard.vault.principal import parse_grants


@pytest.fixture
def setup(vault, admin) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:  # type: ignore[no-untyped-def]
    service = ClientService(vault)
    headers = {}
    for name, role, grants in (("boss", "admin", []), ("app", "service", ["pay:encrypt"])):
        service.create(admin, name, role, parse_grants(grants))
        token, _ = service.issue_token(admin, name)
        headers[name] = {"Authorization": f"Bearer {token}"}
    vault.create_key(admin, "pay", "encrypt")
    with TestClient(create_app(vault=vault), client=("192.0.2.7", 40000)) as client:
        yield client, headers


def _last(vault, n: int = 1) -> list[tuple[str, str, str, str | None]]:  # type: ignore[no-untyped-def]
    with vault.engine.connect() as conn:
        rows = conn.execute(
            select(AuditEvent.actor, AuditEvent.op, AuditEvent.result, AuditEvent.reason)
            .order_by(AuditEvent.id.desc())
            .limit(n)
        ).all()
    return [tuple(r) for r in reversed(rows)]


def test_incident_api_calls_are_audited(vault, setup) -> None:
    client, headers = setup
    opened = client.post("/v1/incidents", json={"keys": ["pay"], "exposed_at": "-1h"}, headers=headers["boss"])
    assert opened.status_code == 201
    incident_id = opened.json()["id"]
    assert client.get(f"/v1/incidents/{incident_id}", headers=headers["boss"]).status_code == 200
    assert _last(vault)[0][1:3] == ("incident.read", "ok")
    assert client.get("/v1/incidents", headers=headers["boss"]).status_code == 200
    assert _last(vault)[0][1:3] == ("incident.list", "ok")
    assert client.get(f"/v1/incidents/{incident_id}", headers=headers["app"]).status_code == 403
    actor, op, result, _reason = _last(vault)[0]
    assert (actor, op, result) == ("app", "incident.read", "denied")
    assert client.get("/v1/incidents/999", headers=headers["boss"]).status_code == 404
    assert _last(vault)[0][1:3] == ("incident.read", "error")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/keys", '{"name":"\\ud800","algorithm":"aes256-gcm","tier":"high","purpose":"encrypt"}'),
        ("/v1/keys/pay/encrypt", '{"plaintext_b64":"eA==","context":{"a":"\\ud800"}}'),
        ("/v1/incidents", '{"keys":["pay"],"exposed_at":"-1h","title":"\\udc00"}'),
    ],
)
def test_lone_surrogate_is_refused_and_audited(vault, setup, path: str, body: str) -> None:
    client, headers = setup
    answer = client.post(path, content=body, headers={**headers["boss"], "Content-Type": "application/json"})
    assert answer.status_code == 422
    assert "surrogate" in answer.json()["reason"]
    _actor, op, result, reason = _last(vault)[0]
    assert (op, result) == ("request", "denied") and reason is not None and path in reason


def test_invalid_body_is_audited(vault, setup) -> None:
    client, headers = setup
    assert client.post("/v1/keys", json={"name": 7}, headers=headers["boss"]).status_code == 422
    assert _last(vault)[0][1:3] == ("request", "denied")


def test_dashboard_views_are_audited(vault, setup) -> None:
    client, headers = setup
    for page in ("/", "/keys", "/alerts"):
        assert client.get(page, headers=headers["boss"]).status_code == 200
        actor, op, result, reason = _last(vault)[0]
        assert (actor, op, result) == ("boss", "web.view", "ok") and reason == f"dashboard {page}"
    assert client.get("/keys", headers=headers["app"]).status_code == 403
    assert _last(vault)[0][1:3] == ("web.view", "denied")
