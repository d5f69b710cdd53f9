from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keyguard.errors import (
    ConflictError,
    InvalidSignature,
    InvalidTag,
    KeyStateError,
    NotFoundError,
    PermissionDeniedError,
    UsageError,
)
from keyguard.vault.clients import ClientService
from keyguard.vault.principal import Principal, parse_grants

# A fixed random key: imports refuse all-zero, constant and counting secrets (issue 12).
_RANDOM_32 = bytes.fromhex("9f1c27e4b05a6d83c2f1e0479ab3d65c18e7f2a94b06c3d5e8a17f90b2c4d6e1")


def test_encrypt_decrypt_with_context(vault, admin) -> None:
    vault.create_key(admin, "pay", "encrypt", tier="high")
    ct, version = vault.encrypt(admin, "pay", b"card 4111", {"tenant": "acme"})
    assert ct.startswith("kg:v1:pay:1:") and version == 1
    assert vault.decrypt(admin, ct, {"tenant": "acme"}) == (b"card 4111", "pay", 1)
    with pytest.raises(InvalidTag):
        vault.decrypt(admin, ct, {"tenant": "evil"})
    with pytest.raises(InvalidTag):
        vault.decrypt(admin, ct)


def test_relabelled_ciphertext_fails(vault, admin) -> None:
    vault.create_key(admin, "a", "encrypt")
    vault.create_key(admin, "b", "encrypt")
    ct, _ = vault.encrypt(admin, "a", b"x")
    with pytest.raises(InvalidTag):
        vault.decrypt(admin, ct.replace("kg:v1:a:", "kg:v1:b:"))


@pytest.mark.parametrize(("first", "second"), [("aes256-gcm", "chacha20-poly1305"), ("rsa-2048", "aes256-gcm")])
def test_rotate_to_other_algorithm_old_still_decrypts(vault, admin, first: str, second: str) -> None:
    vault.create_key(admin, "k", "encrypt", algorithm=first)
    old, _ = vault.encrypt(admin, "k", b"data")
    info = vault.rotate(admin, "k", second)
    assert info.active.version == 2 and info.active.algorithm == second
    assert info.versions[1].state == "enabled"
    assert vault.decrypt(admin, old)[0] == b"data"
    new, v = vault.rewrap(admin, old)
    assert v == 2 and vault.decrypt(admin, new) == (b"data", "k", 2)


def test_signing_rotation_rsa_to_ec(vault, admin) -> None:
    vault.create_key(admin, "sig", "sign", algorithm="rsa-2048")
    s1, v1 = vault.sign(admin, "sig", b"m")
    vault.rotate(admin, "sig", "ec-p384")
    s2, v2 = vault.sign(admin, "sig", b"m")
    assert (v1, v2) == (1, 2)
    assert vault.verify(admin, "sig", b"m", s1) == 1
    assert vault.verify(admin, "sig", b"m", s2) == 2
    with pytest.raises(InvalidSignature):
        vault.verify(admin, "sig", b"other", s2)
    with pytest.raises(UsageError):
        vault.rotate(admin, "sig", "aes256-gcm")


def test_hmac_key(vault, admin) -> None:
    vault.create_key(admin, "mac", "mac")
    tag, _ = vault.sign(admin, "mac", b"m")
    assert vault.verify(admin, "mac", b"m", tag) == 1
    with pytest.raises(InvalidSignature):
        vault.verify(admin, "mac", b"n", tag)


def test_state_machine(vault, admin) -> None:
    vault.create_key(admin, "k", "encrypt")
    ct, _ = vault.encrypt(admin, "k", b"x")
    vault.set_state(admin, "k", 1, "disabled")
    with pytest.raises(KeyStateError, match="version 1 is disabled"):
        vault.decrypt(admin, ct)
    with pytest.raises(KeyStateError):
        vault.encrypt(admin, "k", b"x")
    vault.set_state(admin, "k", 1, "enabled")  # latest and no active: becomes active again
    assert vault.key_info("k").versions[1].state == "active"
    vault.set_state(admin, "k", 1, "compromised")
    with pytest.raises(KeyStateError, match="version 1 is compromised"):
        vault.decrypt(admin, ct)
    for target in ("enabled", "disabled"):
        with pytest.raises(ConflictError):
            vault.set_state(admin, "k", 1, target)
    vault.set_state(admin, "k", 1, "destroyed")
    info = vault.key_info("k")
    assert info.versions[1].state == "destroyed" and info.versions[1].sealed is None
    with pytest.raises(ConflictError):
        vault.set_state(admin, "k", 1, "compromised")
    with pytest.raises(KeyStateError, match="destroyed"):
        vault.decrypt(admin, ct)


def test_destroy_requires_disable(vault, admin) -> None:
    vault.create_key(admin, "k", "encrypt")
    with pytest.raises(ConflictError, match="cannot go from active to destroyed"):
        vault.set_state(admin, "k", 1, "destroyed")


def test_min_decryption_version(vault, admin) -> None:
    vault.create_key(admin, "k", "encrypt")
    ct, _ = vault.encrypt(admin, "k", b"x")
    vault.rotate(admin, "k")
    vault.set_min_decryption_version(admin, "k", 2)
    with pytest.raises(KeyStateError, match="min_decryption_version"):
        vault.decrypt(admin, ct)
    with pytest.raises(UsageError):
        vault.set_min_decryption_version(admin, "k", 3)


def test_errors(vault, admin) -> None:
    with pytest.raises(NotFoundError):
        vault.encrypt(admin, "missing", b"x")
    with pytest.raises(UsageError):
        vault.create_key(admin, "Bad Name", "encrypt")
    with pytest.raises(UsageError):
        vault.create_key(admin, "k", "encrypt", algorithm="ed25519")
    with pytest.raises(UsageError):
        vault.create_key(admin, "k", "encrypt", tier="urgent")
    vault.create_key(admin, "k", "encrypt")
    with pytest.raises(ConflictError):
        vault.create_key(admin, "k", "encrypt")
    with pytest.raises(UsageError):
        vault.sign(admin, "k", b"x")


def test_data_key(vault, admin) -> None:
    vault.create_key(admin, "k", "encrypt")
    dek, wrapped, version = vault.generate_data_key(admin, "k", {"f": "x"})
    assert len(dek) == 32 and version == 1
    assert vault.decrypt(admin, wrapped, {"f": "x"})[0] == dek


def _pem(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    ("make", "purpose", "expected"),
    [
        (lambda: _pem(rsa.generate_private_key(65537, 2048)), "sign", "rsa-2048"),
        (lambda: _pem(ec.generate_private_key(ec.SECP384R1())), "sign", "ec-p384"),
        (
            lambda: ed25519.Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            "sign",
            "ed25519",
        ),
        (lambda: _RANDOM_32.hex().encode(), "encrypt", "aes256-gcm"),
        (lambda: base64.b64encode(_RANDOM_32), "encrypt", "aes256-gcm"),
        (lambda: _RANDOM_32, "encrypt", "aes256-gcm"),
        (lambda: base64.b64encode(_RANDOM_32[:20]), "mac", "hmac-sha256"),
    ],
)
def test_import_formats(vault, admin, make, purpose: str, expected: str) -> None:
    info = vault.import_key(admin, "imp", make(), purpose, "high")
    assert info.versions[1].algorithm == expected and info.versions[1].origin == "imported"


def test_import_jwk_and_fingerprint_matches_public(vault, admin) -> None:
    from jwt.algorithms import ECAlgorithm

    private = ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(private)
    info = vault.import_key(admin, "jwk", jwk.encode(), "sign")
    spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    from keyguard.crypto.algorithms import public_fingerprint

    assert info.versions[1].fingerprint == public_fingerprint(spki)
    oct_jwk = json.dumps({"kty": "oct", "k": base64.urlsafe_b64encode(_RANDOM_32).rstrip(b"=").decode()})
    secret = vault.import_key(admin, "oct", oct_jwk.encode(), "encrypt")
    assert secret.versions[1].fingerprint == vault.secret_fingerprint(_RANDOM_32)


@pytest.mark.parametrize(
    "data",
    [
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        b"{not json",
        b"short",
        b"-----BEGIN PRIVATE KEY-----\nzzzz\n-----END PRIVATE KEY-----",
    ],
)
def test_import_rejects(vault, admin, data: bytes) -> None:
    with pytest.raises(UsageError) as info:
        vault.import_key(admin, "bad", data, "encrypt")
    assert "zzzz" not in str(info.value) and "short" not in str(info.value)


def test_grants_and_denials_are_audited(vault, admin) -> None:
    vault.create_key(admin, "pay", "encrypt")
    vault.create_key(admin, "hr", "encrypt")
    clients = ClientService(vault)
    clients.create(admin, "billing", "service", parse_grants(["pay:encrypt"]))
    token, _ = clients.issue_token(admin, "billing")
    svc = clients.authenticate(token)
    ct, _ = vault.encrypt(svc, "pay", b"x")
    with pytest.raises(PermissionDeniedError):
        vault.decrypt(svc, ct)
    with pytest.raises(PermissionDeniedError):
        vault.encrypt(svc, "hr", b"x")
    with pytest.raises(PermissionDeniedError):
        vault.rotate(svc, "pay")
    from keyguard.audit.reading import iter_events

    denied = [e for e in iter_events(vault.engine) if e["result"] == "denied"]
    assert [(e["actor"], e["op"], e["key"]) for e in denied] == [
        ("billing", "decrypt", "pay"),
        ("billing", "encrypt", "hr"),
        ("billing", "key.rotate", "pay"),
    ]
    assert all(token not in json.dumps(e) for e in iter_events(vault.engine))


def test_tokens_expire_revoke_suspend(vault, admin) -> None:
    from datetime import timedelta

    from keyguard.clock import FrozenClock

    clock = FrozenClock(vault.clock.now())
    vault.clock = clock
    clients = ClientService(vault)
    clients.create(admin, "svc", "service", [])
    token, expires = clients.issue_token(admin, "svc", timedelta(minutes=5))
    assert clients.authenticate(token).name == "svc"
    clock.advance(timedelta(minutes=6))
    with pytest.raises(PermissionDeniedError):
        clients.authenticate(token)
    token2, _ = clients.issue_token(admin, "svc")
    clients.set_status(admin, "svc", "suspended")
    with pytest.raises(PermissionDeniedError, match="suspended"):
        clients.authenticate(token2)
    clients.set_status(admin, "svc", "active")
    assert clients.authenticate(token2).name == "svc"
    clients.revoke_tokens(admin, "svc")
    with pytest.raises(PermissionDeniedError):
        clients.authenticate(token2)
    with pytest.raises(PermissionDeniedError):
        clients.authenticate("kgt_forged")


def test_roles(vault, admin) -> None:
    auditor = Principal(name="aud", role="auditor")
    vault.create_key(admin, "k", "encrypt")
    with pytest.raises(PermissionDeniedError):
        vault.encrypt(auditor, "k", b"x")
    assert [k.name for k in vault.list_keys(auditor)] == ["k"]
    operator = Principal(name="op", role="operator")
    vault.rotate(operator, "k")
    with pytest.raises(PermissionDeniedError):
        vault.set_state(operator, "k", 1, "destroyed")


def test_compromised_use_fires_tripwire(vault, admin) -> None:
    fired: list[tuple[str, int, str]] = []
    vault.tripwire_hooks.append(lambda p, key, version, op: fired.append((key, version, op)))
    vault.create_key(admin, "k", "encrypt")
    ct, _ = vault.encrypt(admin, "k", b"x")
    vault.set_state(admin, "k", 1, "compromised")
    with pytest.raises(KeyStateError):
        vault.decrypt(admin, ct)
    assert fired == [("k", 1, "decrypt")]


def test_material_sealed_at_rest(vault, admin) -> None:
    vault.create_key(admin, "k", "encrypt")
    raw = vault.loaded_version("k", 1, allow_blocked=False).secret_bytes()
    from sqlalchemy import text

    with vault.engine.connect() as conn:
        blobs = [bytes(r[0]) for r in conn.execute(text("SELECT sealed FROM key_versions"))]
    assert blobs and all(raw not in blob for blob in blobs)


def test_cache_sees_changes_from_another_vault_instance(vault_factory, admin) -> None:
    a = vault_factory()
    b = vault_factory()
    a.create_key(admin, "k", "encrypt")
    ct, _ = b.encrypt(admin, "k", b"x")
    b.start_watcher(interval=0.05)
    a.set_state(admin, "k", 1, "compromised")
    import time

    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            b.decrypt(admin, ct)
        except KeyStateError:
            break
        time.sleep(0.02)
    else:
        pytest.fail("the second instance still served a compromised version after 1 s")


def test_mfa_for_destructive_operations(vault, admin) -> None:
    import pyotp

    from keyguard.errors import MfaRequiredError

    vault.mfa_required = True
    vault.create_key(admin, "k", "encrypt")
    clients = ClientService(vault)
    clients.create(admin, "oncall", "operator", [])
    token, _ = clients.issue_token(admin, "oncall")
    secret, uri = clients.enroll_mfa(admin, "oncall")
    assert uri.startswith("otpauth://totp/") and secret not in json.dumps(list(_events(vault)))
    without = clients.authenticate(token)
    with pytest.raises(MfaRequiredError):
        vault.set_state(without, "k", 1, "compromised")
    with pytest.raises(PermissionDeniedError):
        clients.authenticate(token, otp="000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    with_mfa = clients.authenticate(token, otp=pyotp.TOTP(secret).at(vault.clock.now()))
    assert vault.set_state(with_mfa, "k", 1, "compromised").versions[1].state == "compromised"


def _events(vault):  # type: ignore[no-untyped-def]
    from keyguard.audit.reading import iter_events

    return iter_events(vault.engine)


def test_import_binary_keys_ending_in_whitespace_bytes(vault, admin) -> None:
    """Raw DER and raw secrets are taken as given, even when their bytes look like whitespace."""
    from keyguard.vault.keyimport import parse_key

    raw = _RANDOM_32[:31] + b"\n"
    assert parse_key(raw, "encrypt").material == raw
    for _ in range(2000):
        der = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        if der[-1:] in (b" ", b"\n", b"\t", b"\r", b"\x0b", b"\x0c"):
            break
    assert der[-1:].isspace()  # 2,000 tries: found with certainty for all practical purposes
    assert parse_key(der, "sign").algorithm == "ed25519"


def test_principal_on_request_is_replace() -> None:
    import dataclasses

    base = Principal(name="svc", role="service", grants=(("pay", "encrypt"),), client_id=3, extra={"probe": "1"})
    seen = base.on_request("192.0.2.1", "curl/8", "rid-1")
    assert seen == dataclasses.replace(base, source_ip="192.0.2.1", user_agent="curl/8", request_id="rid-1")
    assert base.source_ip is None and base.request_id is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        seen.name = "other"  # type: ignore[misc]
