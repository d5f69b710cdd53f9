"""Crypto operations over HTTP, and how their errors map (SPEC §6)."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_encrypt_decrypt_round_trip_with_context(as_admin: TestClient) -> None:
    r = as_admin.post(
        "/v1/keys",
        json={"name": "pay", "algorithm": "aes256-gcm", "tier": "high", "purpose": "encrypt"},
    )
    assert r.status_code == 201, r.text
    data = os.urandom(4096)
    r = as_admin.post("/v1/keys/pay/encrypt", json={"plaintext_b64": b64(data), "context": {"tenant": "acme"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == 1 and body["ciphertext"].startswith("kg:v1:pay:1:")
    r = as_admin.post(
        "/v1/keys/pay/decrypt",
        json={"ciphertext": body["ciphertext"], "context": {"tenant": "acme"}},
    )
    assert r.status_code == 200, r.text
    assert base64.b64decode(r.json()["plaintext_b64"]) == data and r.json()["version"] == 1

    # wrong context and tampering: integrity → 409, no detail
    r = as_admin.post("/v1/keys/pay/decrypt", json={"ciphertext": body["ciphertext"], "context": {"tenant": "x"}})
    assert r.status_code == 409 and r.json()["error"] == "integrity"
    tampered = body["ciphertext"][:-4] + ("AAAA" if not body["ciphertext"].endswith("AAAA") else "BBBB")
    r = as_admin.post("/v1/keys/pay/decrypt", json={"ciphertext": tampered, "context": {"tenant": "acme"}})
    assert r.status_code == 409
    # a ciphertext of another key posted to this key's path
    as_admin.post("/v1/keys", json={"name": "other", "purpose": "encrypt"})
    r = as_admin.post("/v1/keys/other/decrypt", json={"ciphertext": body["ciphertext"]})
    assert r.status_code == 422 and "belongs to key 'pay'" in r.json()["reason"]


def test_compromised_version_is_refused_with_the_state(
    as_admin: TestClient, events: Callable[..., list[dict[str, Any]]]
) -> None:
    as_admin.post(
        "/v1/keys",
        json={"name": "pay", "algorithm": "aes256-gcm", "tier": "high", "purpose": "encrypt"},
    )
    ct = as_admin.post("/v1/keys/pay/encrypt", json={"plaintext_b64": b64(b"x")}).json()["ciphertext"]
    r = as_admin.post("/v1/keys/pay/versions/1/compromise", json={"reason": "leaked in git"})
    assert r.status_code == 200 and r.json()["versions"][0]["state"] == "compromised"
    r = as_admin.post("/v1/keys/pay/decrypt", json={"ciphertext": ct})
    assert r.status_code == 403
    assert r.json()["error"] == "refused" and r.json()["reason"] == "version 1 is compromised"
    r = as_admin.post("/v1/keys/pay/encrypt", json={"plaintext_b64": b64(b"x")})
    assert r.status_code == 403 and r.json()["reason"] == "version 1 is compromised"
    denied = events(op="decrypt", result="denied")
    assert denied and denied[-1]["reason"] == "version 1 is compromised" and denied[-1]["source_ip"] == "192.0.2.7"
    # rotate: encrypt works again under version 2, the old ciphertext can be moved by an admin
    assert as_admin.post("/v1/keys/pay/rotate").json()["active_version"] == 2
    r = as_admin.post("/v1/keys/pay/rewrap", json={"ciphertext": ct})
    assert r.status_code == 200 and r.json()["version"] == 2
    r = as_admin.post("/v1/keys/pay/decrypt", json={"ciphertext": r.json()["ciphertext"]})
    assert base64.b64decode(r.json()["plaintext_b64"]) == b"x"


def test_unknown_key_and_bad_bodies(as_admin: TestClient) -> None:
    r = as_admin.post("/v1/keys/nope/encrypt", json={"plaintext_b64": b64(b"x")})
    assert r.status_code == 404 and r.json()["error"] == "not_found" and "nope" in r.json()["reason"]
    as_admin.post("/v1/keys", json={"name": "pay", "purpose": "encrypt"})
    secret = "c2VjcmV0IHBsYWludGV4dA=="
    r = as_admin.post("/v1/keys/pay/encrypt", json={"plaintext": secret})
    assert r.status_code == 422 and r.json()["error"] == "invalid"
    assert secret not in r.text  # the body is never echoed back
    r = as_admin.post("/v1/keys/pay/encrypt", json={"plaintext_b64": "not base64!!"})
    assert r.status_code == 422 and "plaintext_b64" in r.json()["reason"]
    r = as_admin.post("/v1/keys/pay/encrypt", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    r = as_admin.post("/v1/keys/pay/decrypt", json={"ciphertext": "kg:v1:pay:x"})
    assert r.status_code == 422
    r = as_admin.post(
        "/v1/keys/pay/encrypt",
        json={"plaintext_b64": b64(b"x"), "context": ["not", "an", "object"]},
    )
    assert r.status_code == 422
    r = as_admin.post("/v1/keys", json={"name": "Bad Name", "purpose": "encrypt"})
    assert r.status_code == 422 and r.json()["reason"].startswith("name: ")
    r = as_admin.post("/v1/keys", json={"name": "pay", "purpose": "encrypt"})
    assert r.status_code == 409 and r.json()["error"] == "conflict"


def test_data_key_sign_verify(as_admin: TestClient) -> None:
    as_admin.post("/v1/keys", json={"name": "env", "purpose": "encrypt"})
    r = as_admin.post("/v1/keys/env/data-key", json={"context": {"f": "1"}})
    assert r.status_code == 200, r.text
    dk = r.json()
    r = as_admin.post("/v1/keys/env/decrypt", json={"ciphertext": dk["ciphertext"], "context": {"f": "1"}})
    assert r.json()["plaintext_b64"] == dk["plaintext_b64"] and len(base64.b64decode(dk["plaintext_b64"])) == 32

    assert as_admin.post("/v1/keys", json={"name": "tok", "purpose": "sign", "algorithm": "ed25519"}).status_code == 201
    r = as_admin.post("/v1/keys/tok/sign", json={"message_b64": b64(b"hello")})
    assert r.status_code == 200, r.text
    sig = r.json()["signature_b64"]
    r = as_admin.post("/v1/keys/tok/verify", json={"message_b64": b64(b"hello"), "signature_b64": sig})
    assert r.status_code == 200 and r.json() == {"valid": True, "version": 1, "key": "tok"}
    r = as_admin.post("/v1/keys/tok/verify", json={"message_b64": b64(b"hellO"), "signature_b64": sig})
    assert r.status_code == 409 and r.json()["reason"] == "signature does not verify"
    # purpose mismatch is bad input
    r = as_admin.post("/v1/keys/tok/encrypt", json={"plaintext_b64": b64(b"x")})
    assert r.status_code == 422
