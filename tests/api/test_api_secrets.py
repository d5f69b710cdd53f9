"""``/v1/secrets`` on both backends: versions, per-secret grants, audit with the client, destroy."""

from __future__ import annotations

import base64
from typing import Any

from fastapi.testclient import TestClient
from tests.api.conftest import TokenFactory, auth


def _b64(value: bytes) -> dict[str, str]:
    return {"value_b64": base64.b64encode(value).decode()}


def _value(doc: dict[str, Any]) -> bytes:
    return base64.b64decode(doc["value_b64"])


def test_versions_list_and_destroy(as_admin: TestClient, events: Any) -> None:
    assert as_admin.put("/v1/secrets/billing-db", json=_b64(b"pw-1")).json() == {"name": "billing-db", "version": 1}
    assert as_admin.post("/v1/secrets/billing-db", json=_b64(b"pw-2")).json()["version"] == 2
    latest = as_admin.get("/v1/secrets/billing-db").json()
    assert (latest["version"], _value(latest)) == (2, b"pw-2")
    assert _value(as_admin.get("/v1/secrets/billing-db", params={"version": 1}).json()) == b"pw-1"
    rotated = as_admin.post("/v1/secrets/billing-db/rotate", json={"generate": True})
    assert rotated.status_code == 200 and rotated.json() == {"name": "billing-db", "version": 3}
    listed = as_admin.get("/v1/secrets").json()
    assert [(s["name"], s["latest_version"]) for s in listed] == [("billing-db", 3)]
    assert "value_b64" not in str(listed)
    gone = as_admin.delete("/v1/secrets/billing-db", params={"version": 1})
    assert gone.status_code == 200 and gone.json()["versions"][0]["state"] == "destroyed"
    refused = as_admin.get("/v1/secrets/billing-db", params={"version": 1})
    assert refused.status_code == 403 and "destroyed" in refused.json()["reason"]
    assert as_admin.get("/v1/secrets/nope").status_code == 404
    assert as_admin.get("/v1/secrets/billing-db", params={"version": 7}).status_code == 404
    assert as_admin.put("/v1/secrets/Bad Name", json=_b64(b"x")).status_code == 422
    assert as_admin.put("/v1/secrets/ok", json={"value_b64": "***"}).status_code == 422
    assert as_admin.post("/v1/secrets/absent/rotate", json={"generate": True}).status_code == 404
    assert as_admin.delete("/v1/secrets/billing-db").status_code == 422  # the version is required
    assert len(events(op="secret.destroy", key="secret:billing-db", result="ok")) == 1


def test_grants_and_audited_reads(api: TestClient, tokens: TokenFactory, root_token: str, events: Any) -> None:
    api.put("/v1/secrets/billing-db", json=_b64(b"pw"), headers=auth(root_token))
    api.put("/v1/secrets/hr-db", json=_b64(b"hr"), headers=auth(root_token))
    billing = tokens("billing", "service", ["secret:billing-db:read"])
    keys_only = tokens("keys-only", "service", ["*:decrypt"])
    read = api.get("/v1/secrets/billing-db", headers={**auth(billing), "X-Keyguard-Purpose": "run: DB_PASSWORD"})
    assert read.status_code == 200 and _value(read.json()) == b"pw"
    assert api.get("/v1/secrets/hr-db", headers=auth(billing)).status_code == 403
    assert api.put("/v1/secrets/billing-db", json=_b64(b"mine"), headers=auth(billing)).status_code == 403
    assert api.get("/v1/secrets/billing-db", headers=auth(keys_only)).status_code == 403
    assert api.delete("/v1/secrets/billing-db", params={"version": 1}, headers=auth(billing)).status_code == 403
    assert api.get("/v1/secrets/billing-db").status_code == 401
    assert [s["name"] for s in api.get("/v1/secrets", headers=auth(billing)).json()] == ["billing-db"]
    ok = events(op="secret.read", key="secret:billing-db", result="ok")
    assert [(e["actor"], e["version"], e["reason"], e["source_ip"]) for e in ok] == [
        ("billing", 1, "run: DB_PASSWORD", "192.0.2.7")
    ]
    assert len(events(op="secret.read", key="secret:hr-db", result="denied")) == 1
    readers = api.get("/v1/secrets/billing-db/readers", headers=auth(root_token)).json()
    assert [(r["actor"], r["reads"]) for r in readers] == [("billing", 1)]
    assert api.get("/v1/secrets/billing-db/readers", headers=auth(billing)).status_code == 403
