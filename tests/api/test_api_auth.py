"""Bearer tokens, roles and grants over HTTP: refusals are 401/403 and audited."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

Events = Callable[..., list[dict[str, Any]]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_token_required_and_refusals_audited(api: TestClient, events: Events) -> None:
    r = api.get("/v1/keys")
    assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
    assert r.headers["WWW-Authenticate"] == "Bearer"
    r = api.get("/v1/keys", headers={"Authorization": "Bearer kgt_made-up", "X-Request-Id": "req-1"})
    assert r.status_code == 401 and r.json()["reason"] == "invalid or expired token"
    assert r.headers["X-Request-Id"] == "req-1"
    denied = events(op="auth", result="denied")
    assert [e["reason"] for e in denied] == ["no bearer token", "invalid or expired token"]
    assert denied[1]["request_id"] == "req-1" and denied[1]["actor"] == "anonymous"
    assert "kgt_made-up" not in str(denied)


def test_grants_are_least_privilege(api: TestClient, root_token: str, tokens: Any, events: Events) -> None:
    admin = bearer(root_token)
    for name in ("pay", "hr"):
        assert api.post("/v1/keys", json={"name": name, "purpose": "encrypt"}, headers=admin).status_code == 201
    svc = bearer(tokens("checkout", "service", ["pay:encrypt"]))
    r = api.post("/v1/keys/pay/encrypt", json={"plaintext_b64": b64(b"x")}, headers=svc)
    assert r.status_code == 200, r.text
    ct = r.json()["ciphertext"]
    r = api.post("/v1/keys/pay/decrypt", json={"ciphertext": ct}, headers=svc)
    assert r.status_code == 403 and r.json() == {
        "error": "refused",
        "reason": "checkout may not decrypt on key 'pay'",
        "hint": "role service has no grant for it",
    }
    r = api.post("/v1/keys/hr/encrypt", json={"plaintext_b64": b64(b"x")}, headers=svc)
    assert r.status_code == 403
    assert api.post("/v1/keys", json={"name": "x", "purpose": "encrypt"}, headers=svc).status_code == 403
    assert api.get("/v1/audit", headers=svc).status_code == 403
    denied = events(actor="checkout", result="denied")
    assert {(e["op"], e["key"]) for e in denied} >= {
        ("decrypt", "pay"),
        ("encrypt", "hr"),
        ("key.create", "x"),
    }
    assert all(e["source_ip"] == "192.0.2.7" for e in denied)

    auditor = bearer(tokens("aud", "auditor"))
    assert api.get("/v1/keys", headers=auditor).status_code == 200
    assert api.get("/v1/audit", headers=auditor).status_code == 200
    assert api.post("/v1/keys/pay/rotate", headers=auditor).status_code == 403
    assert api.post("/v1/keys/pay/decrypt", json={"ciphertext": ct}, headers=auditor).status_code == 403
    assert api.post("/v1/clients", json={"name": "c2", "role": "admin"}, headers=auditor).status_code == 403

    operator = bearer(tokens("ops", "operator"))
    assert api.post("/v1/keys/pay/decrypt", json={"ciphertext": ct}, headers=operator).status_code == 200
    assert api.post("/v1/keys/pay/versions/1/destroy", headers=operator).status_code == 403


def test_suspend_resume_revoke(api: TestClient, root_token: str, tokens: Any) -> None:
    admin = bearer(root_token)
    api.post("/v1/keys", json={"name": "pay", "purpose": "encrypt"}, headers=admin)
    svc = bearer(tokens("checkout", "service", ["pay:encrypt,decrypt"]))
    body = {"plaintext_b64": b64(b"x")}
    assert api.post("/v1/keys/pay/encrypt", json=body, headers=svc).status_code == 200  # now cached
    r = api.post("/v1/clients/checkout/suspend", json={"reason": "token leaked"}, headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    r = api.post("/v1/keys/pay/encrypt", json=body, headers=svc)
    assert r.status_code == 403 and r.json()["reason"] == "client 'checkout' is suspended"
    assert api.post("/v1/clients/checkout/token", headers=admin).status_code == 403
    assert api.post("/v1/clients/checkout/resume", headers=admin).json()["status"] == "active"
    assert api.post("/v1/keys/pay/encrypt", json=body, headers=svc).status_code == 200
    r = api.post("/v1/clients/checkout/revoke", headers=admin)
    assert r.status_code == 200 and r.json() == {"revoked": 1}
    assert api.post("/v1/keys/pay/encrypt", json=body, headers=svc).status_code == 401
    # a new token works again
    r = api.post("/v1/clients/checkout/token", json={"ttl_seconds": 60}, headers=admin)
    assert r.status_code == 201 and r.json()["token"].startswith("kgt_")
    assert api.post("/v1/keys/pay/encrypt", json=body, headers=bearer(r.json()["token"])).status_code == 200


def test_clients_endpoints(as_admin: TestClient) -> None:
    r = as_admin.post("/v1/clients", json={"name": "web", "role": "service", "grants": ["pay:encrypt,decrypt"]})
    assert r.status_code == 201, r.text
    assert sorted(r.json()["grants"]) == ["pay:decrypt", "pay:encrypt"]
    assert {c["name"] for c in as_admin.get("/v1/clients").json()} == {"root", "web"}
    assert as_admin.get("/v1/clients/web").json()["role"] == "service"
    assert as_admin.get("/v1/clients/nope").status_code == 404
    r = as_admin.post("/v1/clients", json={"name": "web2", "role": "service", "grants": ["pay:fly"]})
    assert r.status_code == 422 and "unknown operation" in r.json()["reason"]
    assert as_admin.post("/v1/clients", json={"name": "web", "role": "service"}).status_code == 409
    assert as_admin.post("/v1/clients", json={"name": "x", "role": "king"}).status_code == 422


def test_forwarded_for_only_from_trusted_proxies(api: TestClient, vault: Any, tokens: Any, events: Events) -> None:
    token = tokens("aud", "auditor")
    api.get(
        "/v1/keys",
        headers={**bearer(token), "X-Forwarded-For": "203.0.113.9", "User-Agent": "evil/1"},
    )
    seen = events(op="key.list")[-1]
    assert seen["source_ip"] == "192.0.2.7" and seen["user_agent"] == "evil/1"  # the peer is no proxy
    from keyguard.api import create_app

    with TestClient(
        create_app(vault=vault, trusted_proxies=["10.9.0.0/16"], watch=False),
        client=("10.9.1.1", 1),
    ) as proxied:
        proxied.get(
            "/v1/keys",
            headers={**bearer(token), "X-Forwarded-For": "198.51.100.1, 203.0.113.9, 10.9.2.2"},
        )
    assert events(op="key.list")[-1]["source_ip"] == "203.0.113.9"
