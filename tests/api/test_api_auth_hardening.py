"""Issue 12 points 5-7 over HTTP: replayed and guessed TOTP codes, MFA for administration,
token lifetimes, weak or compromised imports."""

from __future__ import annotations

import base64
import secrets

import pyotp
from fastapi.testclient import TestClient
from tests.api.conftest import auth

from keyguard.vault.clients import ClientService
from keyguard.vault.totp import MAX_FAILURES


def _oncall(vault, admin):  # type: ignore[no-untyped-def]
    clients = ClientService(vault)
    clients.create(admin, "oncall", "admin", [])
    token, _ = clients.issue_token(admin, "oncall")
    secret, _uri = clients.enroll_mfa(admin, "oncall")
    return token, pyotp.TOTP(secret)


def test_replayed_code_answers_401_and_guessing_answers_429(api: TestClient, vault, admin, events) -> None:  # type: ignore[no-untyped-def]
    vault.mfa_required = True
    vault.create_key(admin, "pay", "encrypt")
    token, totp = _oncall(vault, admin)
    code = totp.at(vault.clock.now())
    first = api.post("/v1/keys/pay/rotate", headers={**auth(token), "X-Keyguard-OTP": code})
    assert first.status_code == 200, first.text
    replay = api.post("/v1/keys/pay/rotate", headers={**auth(token), "X-Keyguard-OTP": code})
    assert replay.status_code == 401 and replay.json()["reason"] == "invalid second factor"
    answers = [
        api.post("/v1/keys/pay/rotate", headers={**auth(token), "X-Keyguard-OTP": f"{n:06d}"}).status_code
        for n in range(MAX_FAILURES + 2)
    ]
    assert answers[: MAX_FAILURES - 2] == [401] * (MAX_FAILURES - 2)  # the replay was the first failure
    assert answers[MAX_FAILURES - 1 :] == [429] * 3
    locked = api.post("/v1/keys/pay/rotate", headers={**auth(token), "X-Keyguard-OTP": totp.now()})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    assert len(vault.key_info("pay").versions) == 2  # only the first call rotated
    assert len(events(op="auth.otp", result="denied")) >= MAX_FAILURES + 2


def test_admin_calls_need_the_second_factor(api: TestClient, vault, admin) -> None:  # type: ignore[no-untyped-def]
    vault.mfa_required = True
    token, totp = _oncall(vault, admin)
    body = {"name": "intruder", "role": "admin", "grants": []}
    refused = api.post("/v1/clients", json=body, headers=auth(token))
    assert refused.status_code == 403 and "second factor" in refused.json()["reason"]
    assert api.post("/v1/clients/oncall/token", headers=auth(token)).status_code == 403
    done = api.post("/v1/clients", json=body, headers={**auth(token), "X-Keyguard-OTP": totp.at(vault.clock.now())})
    assert done.status_code == 201, done.text


def test_long_token_lifetimes_are_refused(as_admin: TestClient) -> None:
    as_admin.post("/v1/clients", json={"name": "svc", "role": "service", "grants": []})
    month = as_admin.post("/v1/clients/svc/token", json={"ttl_seconds": 30 * 86400})
    assert month.status_code == 422 and "exceeds the maximum of 1h" in month.json()["reason"]
    hour = as_admin.post("/v1/clients/svc/token", json={"ttl_seconds": 3600})
    assert hour.status_code == 201
    default = as_admin.post("/v1/clients/svc/token")
    assert default.status_code == 201


def test_weak_and_compromised_imports_answer_422(as_admin: TestClient, events) -> None:  # type: ignore[no-untyped-def]
    zero = as_admin.post(
        "/v1/keys/weak/import", json={"material_b64": base64.b64encode(bytes(32)).decode(), "purpose": "encrypt"}
    )
    assert zero.status_code == 422 and zero.json()["reason"].startswith("weak key: ")
    material = base64.b64encode(secrets.token_bytes(32)).decode()
    body = {"material_b64": material, "purpose": "encrypt"}
    assert as_admin.post("/v1/keys/legacy/import", json=body).status_code == 201
    assert as_admin.post("/v1/keys/legacy/versions/1/compromise").status_code == 200
    again = as_admin.post("/v1/keys/legacy/import", json=body)
    assert again.status_code == 422 and "compromised" in again.json()["reason"]
    assert len(events(op="key.import", result="denied")) == 2
