"""Audit over HTTP, health, metrics, OpenAPI and the error table."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from fastapi.testclient import TestClient

from keyguard import errors
from keyguard.api.errors import STATUS_TABLE, status_of


def test_audit_events_and_verify(as_admin: TestClient, vault: Any) -> None:
    as_admin.post("/v1/keys", json={"name": "pay", "purpose": "encrypt"})
    secret = b"plaintext-never-logged"
    as_admin.post(
        "/v1/keys/pay/encrypt",
        json={"plaintext_b64": base64.b64encode(secret).decode()},
        headers={"X-Request-Id": "r-42"},
    )
    events = as_admin.get("/v1/audit", params={"since": "-1h"}).json()
    assert events and set(events[0]) == {
        "id",
        "ts",
        "actor",
        "source_ip",
        "user_agent",
        "op",
        "key",
        "version",
        "result",
        "reason",
        "request_id",
        "prev_hash",
        "hash",
    }
    enc = [e for e in events if e["op"] == "encrypt"]
    assert enc[0]["request_id"] == "r-42" and enc[0]["actor"] == "root" and enc[0]["result"] == "ok"
    assert secret.decode() not in str(events) and base64.b64encode(secret).decode() not in str(events)
    only = as_admin.get("/v1/audit", params={"key": "pay", "op": "encrypt"}).json()
    assert [e["id"] for e in only] == [enc[0]["id"]]
    page = as_admin.get("/v1/audit", params={"after_id": events[0]["id"], "limit": 1}).json()
    assert [e["id"] for e in page] == [events[0]["id"] + 1]
    assert as_admin.get("/v1/audit", params={"since": "yesterday"}).status_code == 422
    r = as_admin.get("/v1/audit/verify")
    assert r.status_code == 200 and r.json()["valid"] is True and r.json()["events"] >= len(events)

    from sqlalchemy import update

    from keyguard.store.tables import AuditEvent

    with vault.engine.begin() as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.id == enc[0]["id"]).values(actor="mallory"))
    r = as_admin.get("/v1/audit/verify")
    assert r.status_code == 409 and r.json()["error"] == "integrity"
    assert f"event {enc[0]['id']}" in r.json()["reason"]


def test_health_metrics_openapi(as_admin: TestClient) -> None:
    r = as_admin.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    as_admin.post("/v1/keys", json={"name": "pay", "purpose": "encrypt"})
    as_admin.post("/v1/keys/pay/encrypt", json={"plaintext_b64": "eA=="})
    as_admin.post("/v1/keys/pay/versions/1/compromise")
    as_admin.post("/v1/keys/pay/encrypt", json={"plaintext_b64": "eA=="})
    text = as_admin.get("/metrics").text
    assert 'keyguard_http_requests_total{method="POST",route="/v1/keys/{name}/encrypt",status="2xx"}' in text
    assert 'keyguard_vault_operations_total{op="encrypt",result="denied"}' in text
    assert 'key="pay"' not in text
    spec = as_admin.get("/openapi.json").json()
    for path in (
        "/v1/keys",
        "/v1/keys/{name}/encrypt",
        "/v1/keys/{name}/decrypt",
        "/v1/keys/{name}/rotate",
        "/v1/keys/{name}/versions/{version}/{action}",
        "/v1/audit",
        "/.well-known/jwks.json",
    ):
        assert path in spec["paths"], path


@pytest.mark.parametrize("cls", [c for c, _, _ in STATUS_TABLE])
def test_error_table_agrees_with_the_exception_tree(cls: type[errors.KeyguardError]) -> None:
    exc = cls.__new__(cls)
    exc.message, exc.hint = "m", ""
    assert status_of(exc)[0] == cls.http_status


def test_every_domain_error_has_a_status() -> None:
    for cls in (
        errors.KeyStateError,
        errors.MfaRequiredError,
        errors.InvalidTag,
        errors.InvalidSignature,
        errors.ChainIntegrityError,
        errors.RootKeyError,
        errors.ConflictError,
        errors.AuditWriteError,
    ):
        exc = cls.__new__(cls)
        assert status_of(exc)[0] == cls.http_status


def test_audit_failure_fails_closed(as_admin: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """No audit record, no result: the deferred append's failure turns the answer into a 503."""
    assert as_admin.post("/v1/keys", json={"name": "pay", "purpose": "encrypt"}).status_code == 201
    as_admin.post("/v1/keys/pay/encrypt", json={"plaintext_b64": "eA=="})  # the key is cached now
    import keyguard.audit.log as audit_log

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(audit_log.AuditLog, "_transaction", broken)  # every write path opens its transaction here
    r = as_admin.post("/v1/keys/pay/encrypt", json={"plaintext_b64": "eA=="})
    assert r.status_code == 503 and r.json()["error"] == "audit_unavailable"
    assert "ciphertext" not in r.text and "kg:v1" not in r.text
