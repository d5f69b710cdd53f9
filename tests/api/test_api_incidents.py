from __future__ import annotations

import base64

from fastapi.testclient import TestClient
from tests.api.conftest import auth


def test_incident_lifecycle_over_http(as_admin: TestClient, tokens) -> None:  # type: ignore[no-untyped-def]
    assert (
        as_admin.post(
            "/v1/keys", json={"name": "pay", "algorithm": "aes256-gcm", "tier": "high", "purpose": "encrypt"}
        ).status_code
        == 201
    )
    enc = as_admin.post("/v1/keys/pay/encrypt", json={"plaintext_b64": base64.b64encode(b"x").decode()}).json()
    opened = as_admin.post(
        "/v1/incidents", json={"keys": ["pay@1"], "exposed_at": "-2h", "jurisdictions": ["eu"], "data_classes": ["pii"]}
    )
    assert opened.status_code == 201
    incident = opened.json()
    assert incident["status"] == "open" and [p["name"] for p in incident["phases"]]
    got = as_admin.get(f"/v1/incidents/{incident['id']}").json()
    assert got["id"] == incident["id"] and {o["regulation"] for o in got["obligations"]}
    contained = as_admin.post(f"/v1/incidents/{incident['id']}/contain", json={}).json()
    assert all(p["refused"] for p in contained["proofs"])
    refused = as_admin.post("/v1/keys/pay/decrypt", json={"ciphertext": enc["ciphertext"]})
    assert refused.status_code == 403 and refused.json()["reason"] == "version 1 is compromised"
    rotated = as_admin.post(f"/v1/incidents/{incident['id']}/rotate", json={"algorithm": "chacha20-poly1305"}).json()
    assert rotated["rotated"][0]["version"] == 2
    assert as_admin.get("/v1/incidents/999").status_code == 404
    assert as_admin.post("/v1/incidents", json={"keys": [], "exposed_at": "-1h"}).status_code == 422
    assert as_admin.post("/v1/incidents", json={"keys": ["ghost"], "exposed_at": "-1h"}).status_code == 404


def test_respond_over_http_and_roles(api: TestClient, tokens) -> None:  # type: ignore[no-untyped-def]
    admin = auth(tokens("boss", "admin"))
    auditor = auth(tokens("audit", "auditor"))
    api.post(
        "/v1/keys", json={"name": "sig", "algorithm": "rsa-2048", "tier": "high", "purpose": "sign"}, headers=admin
    )
    assert (
        api.post("/v1/incidents/respond", json={"keys": ["sig"], "exposed_at": "-1h"}, headers=auditor).status_code
        == 403
    )
    done = api.post(
        "/v1/incidents/respond", json={"keys": ["sig"], "exposed_at": "-1h", "algorithm": "ec-p384"}, headers=admin
    ).json()
    assert done["rotated"][0]["algorithm"] == "ec-p384"
    assert api.get(f"/v1/incidents/{done['incident']}", headers=auditor).status_code == 200


def test_mfa_header_for_destructive_calls(api: TestClient, vault, admin) -> None:  # type: ignore[no-untyped-def]
    import pyotp

    from keyguard.vault.clients import ClientService

    vault.mfa_required = True
    vault.create_key(admin, "pay", "encrypt")
    clients = ClientService(vault)
    clients.create(admin, "oncall", "operator", [])
    token, _ = clients.issue_token(admin, "oncall")
    secret, _uri = clients.enroll_mfa(admin, "oncall")
    url = "/v1/keys/pay/versions/1/compromise"
    refused = api.post(url, headers=auth(token))
    assert refused.status_code == 403 and "second factor" in refused.json()["reason"]
    wrong = api.post(url, headers={**auth(token), "X-Keyguard-OTP": "12345"})
    assert wrong.status_code in (401, 403)
    code = pyotp.TOTP(secret).at(vault.clock.now())
    done = api.post(url, headers={**auth(token), "X-Keyguard-OTP": code})
    assert done.status_code == 200, done.text
