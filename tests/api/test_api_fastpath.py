"""The encrypt/decrypt fast lane answers exactly like the routes it short-cuts."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import auth

from keyguard.api.app import create_app


@pytest.fixture
def direct(vault) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """No trusted proxies: the fast lane is in play."""
    with TestClient(create_app(vault=vault, token_ttl=60), client=("192.0.2.9", 40000)) as client:
        yield client


@pytest.fixture
def lane_answers(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether the fast lane answered each request (True) or passed it on to FastAPI (False)."""
    from keyguard.api.fastpath import CryptoFastPath

    answered: list[bool] = []
    original = CryptoFastPath._try

    async def spy(self, *args):  # type: ignore[no-untyped-def]
        answered.append(await original(self, *args))
        return answered[-1]

    monkeypatch.setattr(CryptoFastPath, "_try", spy)
    return answered


def test_fast_lane_matches_the_routes(direct: TestClient, vault, admin, tokens, events, lane_answers) -> None:  # type: ignore[no-untyped-def]
    answered = lane_answers
    vault.create_key(admin, "pay", "encrypt")
    token = auth(tokens("svc", "service", ["pay:encrypt,decrypt"]))
    # Let the state watcher see those changes now, not between two requests (it would empty the caches).
    vault._refresh_if_changed()
    body = {"plaintext_b64": base64.b64encode(b"secret").decode(), "context": {"t": 1}}
    first = direct.post("/v1/keys/pay/encrypt", json=body, headers=token)  # cold caches: the route answers
    second = direct.post("/v1/keys/pay/encrypt", json=body, headers=token)  # warm: the fast lane answers
    for response in (first, second):
        assert response.status_code == 200 and set(response.json()) == {"ciphertext", "version", "key"}
        assert response.headers["x-request-id"]
    ct = second.json()["ciphertext"]
    plain = direct.post("/v1/keys/pay/decrypt", json={"ciphertext": ct, "context": {"t": 1}}, headers=token)
    assert plain.json() == {"plaintext_b64": body["plaintext_b64"], "version": 1, "key": "pay"}
    wrong = direct.post("/v1/keys/pay/decrypt", json={"ciphertext": ct, "context": {"t": 2}}, headers=token)
    assert wrong.status_code == 409 and wrong.json()["error"]
    bad = direct.post("/v1/keys/pay/encrypt", json={"plaintext_b64": "@@@"}, headers=token)
    assert bad.status_code == 422
    extra = direct.post("/v1/keys/pay/encrypt", json={**body, "surprise": 1}, headers=token)
    assert extra.status_code == 422
    vault.set_state(admin, "pay", 1, "compromised")
    refused = direct.post("/v1/keys/pay/decrypt", json={"ciphertext": ct, "context": {"t": 1}}, headers=token)
    assert refused.status_code == 403 and refused.json()["reason"] == "version 1 is compromised"
    assert (
        direct.post("/v1/keys/pay/encrypt", json=body, headers={"Authorization": "Bearer kgt_nope"}).status_code == 401
    )
    ops = [(e["op"], e["result"]) for e in events(actor="svc")]
    assert ops.count(("encrypt", "ok")) == 2 and ("decrypt", "denied") in ops and ("decrypt", "error") in ops
    assert answered.count(True) >= 3 and False in answered  # both lanes were taken
    metrics = direct.get("/metrics", headers=auth(tokens("ops", "admin"))).text
    assert 'route="/v1/keys/{name}/encrypt"' in metrics or "/v1/keys/{name}/encrypt" in metrics


def test_fast_lane_looks_up_tokens_missing_from_the_cache(vault, admin, tokens, events, lane_answers) -> None:  # type: ignore[no-untyped-def]
    answered = lane_answers
    vault.create_key(admin, "pay", "encrypt")
    token = auth(tokens("svc", "service", ["pay:encrypt"]))
    body = {"plaintext_b64": base64.b64encode(b"secret").decode()}
    # token_ttl=0: every request misses the token cache; no watcher to empty the key cache meanwhile
    app = create_app(vault=vault, token_ttl=0, watch=False)
    with TestClient(app, client=("192.0.2.9", 40000)) as client:
        client.post("/v1/keys/pay/encrypt", json=body, headers=token)  # cold key cache: the route answers
        answered.clear()
        ok = client.post("/v1/keys/pay/encrypt", json=body, headers=token)
        assert ok.status_code == 200 and answered == [True]
        assert ok.json()["key"] == "pay" and ok.json()["version"] == 1
        bad = client.post("/v1/keys/pay/encrypt", json=body, headers={"Authorization": "Bearer kgt_nope"})
        assert bad.status_code == 401 and answered == [True]  # the gate refused it, body unread
        denied = client.post("/v1/keys/pay/encrypt", json=body, headers=auth(tokens("other", "service")))
        assert denied.status_code == 403 and answered[-1] is True
    assert len(events(op="auth", result="denied")) == 1  # the refusal audited once
    assert len(events(actor="svc", op="encrypt", result="ok")) == 2
    assert len(events(actor="other", op="encrypt", result="denied")) == 1
