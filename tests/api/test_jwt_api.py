"""JWT access tokens over HTTP on SQLite and PostgreSQL: ``POST /v1/auth/token``, the JWKS, 401s and suspension."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt as pyjwt
import pyotp
import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import auth

from keyguard.api import create_app
from keyguard.vault.clients import ClientService

Events = Callable[..., list[dict[str, Any]]]
BODY = {"plaintext_b64": base64.b64encode(b"4111 1111 1111 1111").decode()}


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def checkout(as_admin: TestClient, tokens: Any) -> str:
    """The opaque credential of client ``checkout`` (grants on key ``pay``)."""
    assert as_admin.post("/v1/keys", json={"name": "pay", "purpose": "encrypt"}).status_code == 201
    return str(tokens("checkout", "service", ["pay:encrypt,decrypt"]))


def _jwt(api: TestClient, credential: str) -> str:
    r = api.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials", "client_id": "checkout", "client_secret": credential},
        headers={"Authorization": ""},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def test_token_endpoint_returns_a_jwt_the_api_accepts(api: TestClient, checkout: str, events: Events) -> None:
    r = api.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials", "client_id": "checkout", "client_secret": checkout},
        headers={"Authorization": ""},
    )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer" and 0 < body["expires_in"] <= 900 and body["expires_at"]
    token = body["access_token"]
    claims = pyjwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "checkout" and claims["exp"] - claims["iat"] <= 900
    jwt_auth = {"Authorization": f"Bearer {token}", "User-Agent": "billing/3"}
    r = api.post("/v1/keys/pay/encrypt", json=BODY, headers=jwt_auth)  # the fast lane
    assert r.status_code == 200, r.text
    ciphertext = r.json()["ciphertext"]
    r = api.post("/v1/keys/pay/decrypt", json={"ciphertext": ciphertext, "context": None}, headers=jwt_auth)
    assert r.status_code == 200 and r.json()["plaintext_b64"] == BODY["plaintext_b64"]
    assert api.get("/v1/keys/pay", headers=jwt_auth).status_code == 403  # a routed call: grants apply
    used = events(actor="checkout", op="encrypt", result="ok")
    assert used and used[-1]["user_agent"] == "billing/3"
    assert events(actor="checkout", op="auth.token", result="ok")
    assert token not in json.dumps(events()) and checkout not in json.dumps(events())


def test_the_credential_may_come_as_json_basic_or_bearer(api: TestClient, checkout: str) -> None:
    basic = base64.b64encode(f"checkout:{checkout}".encode()).decode()
    for kwargs in (
        {"json": {"grant_type": "client_credentials", "client_secret": checkout}, "headers": {"Authorization": ""}},
        {"data": {"grant_type": "client_credentials"}, "headers": {"Authorization": f"Basic {basic}"}},
        {"headers": auth(checkout)},
    ):
        r = api.post("/v1/auth/token", **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 200, (kwargs, r.text)
        assert api.get("/v1/keys", headers=auth(r.json()["access_token"])).status_code == 403  # service role


def test_bad_credentials_are_401_and_audited(api: TestClient, checkout: str, events: Events) -> None:
    token = _jwt(api, checkout)
    none = {"Authorization": ""}
    for data in (
        {"grant_type": "client_credentials", "client_secret": "kgt_made-up"},
        {"grant_type": "client_credentials", "client_id": "other", "client_secret": checkout},
        {"grant_type": "client_credentials", "client_secret": token},  # a JWT buys no JWT
        {"grant_type": "client_credentials"},
    ):
        r = api.post("/v1/auth/token", data=data, headers=none)
        assert r.status_code == 401 and r.json()["error"] == "unauthenticated", r.text
        assert r.headers["WWW-Authenticate"] == "Bearer"
    r = api.post("/v1/auth/token", data={"grant_type": "password", "client_secret": checkout}, headers=none)
    assert r.status_code == 422
    r = api.post("/v1/auth/token", content=b"\xff", headers={"Content-Type": "text/plain", "Authorization": ""})
    assert r.status_code == 422
    assert len(events(op="auth.token", result="denied")) == 4


def _tampered(token: str) -> dict[str, str]:
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    header = json.loads(base64.urlsafe_b64decode(head + "=="))
    forged = _b64u(json.dumps({**claims, "sub": "root"}).encode())
    none_head = _b64u(json.dumps({**header, "alg": "none"}).encode())
    wrong_aud = _b64u(json.dumps({**claims, "aud": "other"}).encode())
    return {
        "re-signed": f"{head}.{forged}.{signature}",
        "alg none": f"{none_head}.{forged}.",
        "wrong aud": f"{head}.{wrong_aud}.{signature}",
        "garbage": "eyJhbGciOi.x.y",
    }


def test_tampered_tokens_get_401_on_routes_and_on_the_fast_lane(api: TestClient, checkout: str, events: Events) -> None:
    token = _jwt(api, checkout)
    for why, bad in _tampered(token).items():
        for call in (
            lambda h: api.get("/v1/keys", headers=h),
            lambda h: api.post("/v1/keys/pay/encrypt", json=BODY, headers=h),
        ):
            r = call(auth(bad))
            assert r.status_code == 401, (why, r.text)
            assert r.json()["reason"].startswith("invalid token: ")
    reasons = {e["reason"] for e in events(op="auth", result="denied")}
    expected = {"bad signature", "algorithm not allowed", "malformed"}
    assert {f"invalid token: {why}" for why in expected} <= reasons


def test_expired_token_gets_401(vault: Any, admin: Any, api: TestClient, checkout: str) -> None:
    from keyguard.clock import FrozenClock

    token = _jwt(api, checkout)
    real = vault.clock
    vault.clock = FrozenClock(real.now())
    try:
        vault.clock.advance(pyjwt_exp_delta(token))
        api.app.state.token_cache.clear()  # type: ignore[attr-defined]
        r = api.post("/v1/keys/pay/encrypt", json=BODY, headers=auth(token))
        assert r.status_code == 401 and r.json()["reason"] == "invalid token: expired"
    finally:
        vault.clock = real


def pyjwt_exp_delta(token: str) -> Any:
    from datetime import timedelta

    claims = pyjwt.decode(token, options={"verify_signature": False})
    return timedelta(seconds=claims["exp"] - time.time() + 31)


def test_jwks_publishes_the_signing_key_and_an_outside_verifier_accepts_the_token(
    api: TestClient, checkout: str
) -> None:
    token = _jwt(api, checkout)
    r = api.get("/.well-known/jwks.json")
    assert r.status_code == 200
    keys = r.json()["keys"]
    kid = pyjwt.get_unverified_header(token)["kid"]
    published = [k for k in keys if k.get("kid") == kid]
    assert len(published) == 1 and "d" not in published[0] and published[0]["alg"] == "EdDSA"
    key = pyjwt.PyJWKSet.from_dict({"keys": published})[kid]
    claims = pyjwt.decode(token, key, algorithms=["EdDSA"], audience="keyguard", issuer="keyguard")
    assert claims["sub"] == "checkout"
    spec = api.get("/openapi.json").json()["paths"]["/v1/auth/token"]["post"]
    assert set(spec["requestBody"]["content"]) == {"application/x-www-form-urlencoded", "application/json"}


def test_suspension_refuses_jwts_at_once(as_admin: TestClient, checkout: str) -> None:
    api = as_admin
    token = _jwt(api, checkout)
    jwt_auth = auth(token)
    assert api.post("/v1/keys/pay/encrypt", json=BODY, headers=jwt_auth).status_code == 200  # cached now
    assert api.post("/v1/clients/checkout/suspend", json={"reason": "token leaked"}).status_code == 200
    r = api.post("/v1/keys/pay/encrypt", json=BODY, headers=jwt_auth)
    assert r.status_code == 403 and "suspended" in r.json()["reason"]
    assert api.get("/v1/keys", headers=jwt_auth).status_code == 403


@pytest.fixture
def nodes(vault_factory: Callable[[], Any]) -> Iterator[tuple[TestClient, TestClient]]:
    first, second = vault_factory(), vault_factory()
    with (
        TestClient(create_app(vault=first), client=("192.0.2.1", 1)) as a,
        TestClient(create_app(vault=second), client=("192.0.2.2", 2)) as b,
    ):
        yield a, b


def test_a_suspension_on_node_a_refuses_the_jwt_on_node_b(
    nodes: tuple[TestClient, TestClient], admin: Any
) -> None:
    a, b = nodes
    vault_a = a.app.state.vault  # type: ignore[attr-defined]
    clients = ClientService(vault_a)
    clients.create(admin, "root", "admin", [])
    root, _ = clients.issue_token(admin, "root")
    assert a.post("/v1/keys", json={"name": "pay", "purpose": "encrypt"}, headers=auth(root)).status_code == 201
    clients.create(admin, "checkout", "service", [("pay", "encrypt")])
    credential, _ = clients.issue_token(admin, "checkout")
    token = _jwt(a, credential)  # signed by node A's key, verified by node B
    assert b.post("/v1/keys/pay/encrypt", json=BODY, headers=auth(token)).status_code == 200
    assert a.post("/v1/clients/checkout/suspend", headers=auth(root)).status_code == 200
    started = time.monotonic()
    while b.post("/v1/keys/pay/encrypt", json=BODY, headers=auth(token)).status_code == 200:
        assert time.monotonic() - started < 1.0, "node B still accepts the suspended client's JWT"
        time.sleep(0.01)


def test_a_jwt_with_a_second_factor(vault: Any, admin: Any, api: TestClient, checkout: str) -> None:
    secret, _ = ClientService(vault).enroll_mfa(admin, "checkout")
    token = _jwt(api, checkout)
    vault.mfa_required = True
    r = api.post("/v1/keys/pay/encrypt", json=BODY, headers={**auth(token), "X-Keyguard-OTP": "000000"})
    assert r.status_code == 401
    code = pyotp.TOTP(secret).at(vault.clock.now())
    strong = api.app.state.token_cache.verify_bearer(token, "192.0.2.7", None, None, code)  # type: ignore[attr-defined]
    assert strong.name == "checkout" and strong.mfa
    with pytest.raises(Exception, match="invalid second factor"):  # each code once
        api.app.state.token_cache.verify_bearer(token, otp=code)  # type: ignore[attr-defined]
