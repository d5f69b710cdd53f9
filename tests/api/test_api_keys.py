"""Key management over HTTP: create, import, list, show, rotate, states, config, public, JWKS."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient


def test_key_lifecycle(as_admin: TestClient) -> None:
    r = as_admin.post(
        "/v1/keys",
        json={
            "name": "pay",
            "algorithm": "aes256-gcm",
            "tier": "high",
            "purpose": "encrypt",
            "owner": "pay-team",
        },
    )
    assert r.status_code == 201
    key = r.json()
    assert key["active_version"] == 1 and key["tier"] == "high" and key["versions"][0]["state"] == "active"
    assert key["versions"][0]["fingerprint"].startswith("sha256:") or key["versions"][0]["fingerprint"]
    assert "sealed" not in r.text and "material" not in r.text
    r = as_admin.post("/v1/keys/pay/rotate", json={"algorithm": "chacha20-poly1305"})
    assert r.status_code == 200 and r.json()["active_version"] == 2 and r.json()["algorithm"] == "chacha20-poly1305"
    assert [v["state"] for v in r.json()["versions"]] == ["enabled", "active"]
    assert as_admin.post("/v1/keys/pay/versions/1/disable").json()["versions"][0]["state"] == "disabled"
    assert as_admin.post("/v1/keys/pay/versions/1/enable").json()["versions"][0]["state"] == "enabled"
    assert (
        as_admin.post("/v1/keys/pay/config", json={"min_decryption_version": 2}).json()["min_decryption_version"] == 2
    )
    assert as_admin.post("/v1/keys/pay/config", json={"min_decryption_version": 9}).status_code == 422
    assert as_admin.post("/v1/keys/pay/versions/2/destroy").status_code == 409  # active → destroyed not allowed
    assert as_admin.post("/v1/keys/pay/versions/7/disable").status_code == 404
    assert as_admin.post("/v1/keys/pay/versions/1/explode").status_code == 422
    assert as_admin.post("/v1/keys/pay/versions/1/compromise").status_code == 200
    r = as_admin.post("/v1/keys/pay/versions/1/enable")
    assert r.status_code == 409 and "compromised" in r.json()["hint"]
    assert as_admin.post("/v1/keys/pay/versions/1/destroy").json()["versions"][0]["state"] == "destroyed"
    assert [k["name"] for k in as_admin.get("/v1/keys").json()] == ["pay"]
    assert as_admin.get("/v1/keys/pay").json()["latest_version"] == 2
    assert as_admin.get("/v1/keys/nope").status_code == 404
    assert as_admin.post("/v1/keys/nope/rotate").status_code == 404


def test_public_keys_and_jwks(as_admin: TestClient) -> None:
    assert as_admin.post("/v1/keys", json={"name": "idp", "purpose": "sign", "algorithm": "ec-p256"}).status_code == 201
    as_admin.post("/v1/keys/idp/rotate", json={"algorithm": "ec-p384"})
    pem = as_admin.get("/v1/keys/idp/public").json()
    assert pem["version"] == 2 and pem["algorithm"] == "ec-p384"
    public = serialization.load_pem_public_key(pem["pem"].encode())
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp384r1"
    jwk = as_admin.get("/v1/keys/idp/public", params={"format": "jwk", "version": 1}).json()
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and jwk["kid"] == "idp:1"
    as_admin.post("/v1/keys", json={"name": "pay", "purpose": "encrypt"})
    assert as_admin.get("/v1/keys/pay/public").status_code == 422  # a secret key has no public part

    jwks = as_admin.get("/.well-known/jwks.json", headers={"Authorization": ""})
    assert jwks.status_code == 200
    assert sorted(k["kid"] for k in jwks.json()["keys"]) == ["idp:1", "idp:2"]
    as_admin.post("/v1/keys/idp/versions/1/compromise")
    assert [k["kid"] for k in as_admin.get("/.well-known/jwks.json").json()["keys"]] == ["idp:2"]


def test_import_key(as_admin: TestClient) -> None:
    secret = bytes.fromhex("9f1c27e4b05a6d83c2f1e0479ab3d65c18e7f2a94b06c3d5e8a17f90b2c4d6e1")
    r = as_admin.post(
        "/v1/keys/legacy/import",
        json={"material_b64": base64.b64encode(secret).decode(), "purpose": "encrypt"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["versions"][0]["origin"] == "imported"
    r = as_admin.post("/v1/keys/legacy/import", json={"material_b64": "!!", "purpose": "encrypt"})
    assert r.status_code == 422
