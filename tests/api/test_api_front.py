"""The cached-caller front answers, audits and counts exactly like the middleware chain behind it."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import auth

from keyguard.api.app import create_app
from keyguard.api.front import CachedCallerFront

PLAIN = base64.b64encode(b"secret").decode()
_SAME_HEADERS = ("content-type", "content-length", "x-request-id", "www-authenticate", "connection")


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the front answered itself (it skips the chain for those)."""
    answered: list[str] = []
    original = CachedCallerFront._answer

    async def spy(self, scope, *args):  # type: ignore[no-untyped-def]
        answered.append(scope["path"])
        await original(self, scope, *args)

    monkeypatch.setattr(CachedCallerFront, "_answer", spy)
    return answered


def _clients(vault: Any, **options: Any) -> Iterator[tuple[TestClient, TestClient]]:
    """Two apps over one vault: the full front door, and the same chain without the front."""
    front = create_app(vault=vault, token_ttl=60, watch=False, **options)
    chain = create_app(vault=vault, token_ttl=60, watch=False, **options)
    chain._front = chain._front.chain  # type: ignore[attr-defined]
    with (
        TestClient(front, client=("10.9.0.1", 40000)) as a,
        TestClient(chain, client=("10.9.0.1", 40000)) as b,
    ):
        yield a, b


@pytest.fixture
def pair(vault: Any) -> Iterator[tuple[TestClient, TestClient]]:
    yield from _clients(vault, trusted_proxies=["10.9.0.0/16"])


def _answer(client: TestClient, path: str, body: Any, headers: dict[str, str], events: Any) -> tuple[Any, ...]:
    """What a caller and the audit log see of one request (the random parts left out)."""
    if isinstance(body, bytes):
        response = client.post(path, content=body, headers=headers)
    else:
        response = client.post(path, json=body, headers=headers)
    document = response.json()
    if "ciphertext" in document:
        document["ciphertext"] = document["ciphertext"].rsplit(":", 1)[0]  # fresh nonce each time
    kept = {name: response.headers.get(name) for name in _SAME_HEADERS}
    audited = [
        {k: e[k] for k in ("actor", "op", "key", "version", "result", "reason", "source_ip", "user_agent")}
        for e in events(request_id=response.headers["x-request-id"])
    ]
    return response.status_code, document, kept, audited


def test_front_answers_like_the_chain(pair, vault, admin, tokens, events, taken) -> None:  # type: ignore[no-untyped-def]
    front, chain = pair
    vault.create_key(admin, "pay", "encrypt")
    vault.create_key(admin, "other", "encrypt")
    token = auth(tokens("svc", "service", ["pay:encrypt,decrypt", "other:encrypt"]))
    for client in (front, chain):  # warm both token caches and the key cache: the chain's own lane answers
        client.post("/v1/keys/pay/encrypt", json={"plaintext_b64": PLAIN}, headers=token)
    sealed = front.post("/v1/keys/pay/encrypt", json={"plaintext_b64": PLAIN, "context": {"t": 1}}, headers=token)
    other = front.post("/v1/keys/other/encrypt", json={"plaintext_b64": PLAIN}, headers=token).json()["ciphertext"]
    ct = sealed.json()["ciphertext"]
    cases: list[tuple[str, Any, dict[str, str]]] = [
        ("/v1/keys/pay/encrypt", {"plaintext_b64": PLAIN, "context": {"t": 1}}, {}),
        ("/v1/keys/pay/encrypt", {"plaintext_b64": PLAIN.rstrip("=")}, {}),  # unpadded: the lenient decoder
        ("/v1/keys/pay/decrypt", {"ciphertext": ct, "context": {"t": 1}}, {}),
        ("/v1/keys/pay/decrypt", {"ciphertext": ct, "context": {"t": 2}}, {}),  # tampered context: 409
        ("/v1/keys/pay/decrypt", {"ciphertext": other}, {}),  # another key's ciphertext: the route explains
        ("/v1/keys/pay/encrypt", {"plaintext_b64": "@@@"}, {}),  # bad base64: 422
        ("/v1/keys/pay/encrypt", {"plaintext_b64": PLAIN, "surprise": 1}, {}),  # extra field: 422
        ("/v1/keys/pay/encrypt", b"{not json", {"content-type": "application/json"}),
        ("/v1/keys/nope/encrypt", {"plaintext_b64": PLAIN}, {}),  # unknown key: 404
        ("/v1/keys/other/decrypt", {"ciphertext": other}, {}),  # no grant: 403, audited
        ("/v1/keys/pay/encrypt", {"plaintext_b64": PLAIN}, {"X-Forwarded-For": "198.51.100.4, 10.9.0.2"}),
        ("/v1/keys/pay/encrypt", {"plaintext_b64": PLAIN}, {"User-Agent": "probe/1"}),
        ("/v1/keys/pay/encrypt", {"plaintext_b64": PLAIN}, {"X-Keyguard-OTP": "123456"}),  # second factor
    ]
    for n, (path, body, extra) in enumerate(cases):
        seen = []
        for side, client in (("front", front), ("chain", chain)):
            headers = {**token, **extra, "X-Request-Id": f"case-{n}-{side}"}
            seen.append(_answer(client, path, body, headers, events))
        status, document, kept, audited = seen[0]
        assert (status, document) == seen[1][:2], path
        assert {k: v for k, v in kept.items() if k != "x-request-id"} == {
            k: v for k, v in seen[1][2].items() if k != "x-request-id"
        }
        assert kept["x-request-id"] == f"case-{n}-front" and audited == seen[1][3], (n, audited, seen[1][3])
    assert len(taken) >= 10  # the front took the cached calls (and handed the others on)
    vault.set_state(admin, "pay", 1, "compromised")
    refused = [
        _answer(c, "/v1/keys/pay/decrypt", {"ciphertext": ct, "context": {"t": 1}}, token, events)
        for c in (front, chain)
    ]
    assert refused[0][:2] == refused[1][:2] and refused[0][0] == 403
    assert refused[0][1]["reason"] == "version 1 is compromised" and refused[0][3] == refused[1][3]


def test_front_leaves_uncached_and_bad_callers_to_the_gate(pair, vault, admin, tokens, events, taken) -> None:  # type: ignore[no-untyped-def]
    front, chain = pair
    vault.create_key(admin, "pay", "encrypt")
    fresh = auth(tokens("svc", "service", ["pay:encrypt"]))
    body = {"plaintext_b64": PLAIN}
    for headers in (fresh, {"Authorization": "Bearer kgt_nope"}, {"Authorization": "Basic abc"}, {}):
        answers = [c.post("/v1/keys/pay/encrypt", json=body, headers=headers) for c in (front, chain)]
        assert answers[0].status_code == answers[1].status_code
        assert answers[0].json().keys() == answers[1].json().keys()
        assert answers[0].headers.get("www-authenticate") == answers[1].headers.get("www-authenticate")
    assert taken == []  # none was in the token cache yet: the gate authenticated (and audited) them
    assert len(events(op="auth", result="denied")) == 6


def test_front_refuses_bodies_over_the_cap(vault, admin, tokens, events, taken, tmp_path) -> None:  # type: ignore[no-untyped-def]
    vault.create_key(admin, "pay", "encrypt")
    token = auth(tokens("svc", "service", ["pay:encrypt"]))
    app = create_app(vault=vault, token_ttl=60, watch=False)
    app.max_body = 2048
    app.install_front()
    with TestClient(app) as client:
        client.post("/v1/keys/pay/encrypt", json={"plaintext_b64": PLAIN}, headers=token)  # caches the token
        taken.clear()
        big = client.post("/v1/keys/pay/encrypt", json={"plaintext_b64": "A" * 4000}, headers=token)
        assert big.status_code == 413 and big.json()["error"] == "too_large"
        small = client.post("/v1/keys/pay/encrypt", json={"plaintext_b64": PLAIN}, headers=token)
        assert small.status_code == 200 and taken == ["/v1/keys/pay/encrypt"]
    assert len(events(op="request", result="denied")) == 1


def test_front_counts_requests_in_the_metrics(pair, vault, admin, tokens) -> None:  # type: ignore[no-untyped-def]
    from keyguard.api.metrics import REQUESTS

    front, _chain = pair
    vault.create_key(admin, "pay", "encrypt")
    token = auth(tokens("svc", "service", ["pay:encrypt"]))
    child = REQUESTS.labels("/v1/keys/{name}/encrypt", "POST", "2xx")
    front.post("/v1/keys/pay/encrypt", json={"plaintext_b64": PLAIN}, headers=token)
    before = child._value.get()
    front.post("/v1/keys/pay/encrypt", json={"plaintext_b64": PLAIN}, headers=token)
    assert child._value.get() == before + 1
