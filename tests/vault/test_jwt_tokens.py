"""JWT access tokens at the vault layer, on SQLite and PostgreSQL: issue, verify, refuse, rotate, exchange."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from keyguard.audit.reading import iter_events
from keyguard.clock import FrozenClock
from keyguard.config import Settings
from keyguard.errors import PermissionDeniedError, UsageError
from keyguard.store.jwt_tables import JwtSigningKey
from keyguard.vault.clients import ClientService
from keyguard.vault.jwt_config import JwtConfig, load_jwt_config
from keyguard.vault.jwt_tokens import JwtService, TokenRejected
from keyguard.vault.principal import parse_grants

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, object], claims: dict[str, object], sign: object) -> str:
    head = _b64u(json.dumps(header).encode()) + "." + _b64u(json.dumps(claims).encode())
    return head + "." + _b64u(sign(head.encode()))  # type: ignore[operator]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def node(vault_factory, admin, clock):  # type: ignore[no-untyped-def]
    vault = vault_factory(clock)
    clients = ClientService(vault)
    clients.create(admin, "checkout", "service", parse_grants(["pay:encrypt,decrypt"]))
    clock.advance(timedelta(seconds=1))
    return JwtService(clients, JwtConfig())


def test_issued_token_carries_every_claim_and_verifies(node: JwtService, admin) -> None:  # type: ignore[no-untyped-def]
    issued = node.issue(admin, "checkout")
    header = pyjwt.get_unverified_header(issued.token)
    assert header["alg"] == "EdDSA" and header["kid"] == issued.kid
    claims = pyjwt.decode(issued.token, options={"verify_signature": False})
    assert set(claims) == {"iss", "sub", "aud", "iat", "exp", "jti"}
    assert (claims["iss"], claims["sub"], claims["aud"]) == ("keyguard", "checkout", "keyguard")
    assert claims["exp"] - claims["iat"] == 900 and claims["jti"] == issued.jti
    principal, expires = node.verify(issued.token)
    assert principal.name == "checkout" and principal.role == "service"
    assert sorted(principal.grants) == [("pay", "decrypt"), ("pay", "encrypt")] and not principal.mfa
    assert expires == T0 + timedelta(seconds=1, minutes=15)
    ok = [e for e in iter_events(node.vault.engine) if e["op"] == "client.token"]
    assert ok[-1]["result"] == "ok" and issued.jti in ok[-1]["reason"]
    assert issued.token not in json.dumps(list(iter_events(node.vault.engine)))


def test_lifetime_is_at_most_15_minutes_and_configurable_lower(node: JwtService, admin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match="longer than 15m"):
        JwtConfig(ttl=timedelta(minutes=16))
    with pytest.raises(UsageError, match="exceeds the maximum of 15m"):
        node.issue(admin, "checkout", timedelta(minutes=20))
    (tmp_path / "keyguard.toml").write_text('[auth]\njwt_ttl = "5m"\njwt_audience = "pay-api"\n')
    config = load_jwt_config(Settings(home=tmp_path, database_url="sqlite://"))
    assert config.ttl == timedelta(minutes=5) and config.audience == "pay-api"
    short = JwtService(node.clients, config, node.keyring)
    claims = pyjwt.decode(short.issue(admin, "checkout").token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 300
    (tmp_path / "keyguard.toml").write_text('[auth]\njwt_ttl = "1h"\n')
    with pytest.raises(UsageError, match="longer than 15m"):
        load_jwt_config(Settings(home=tmp_path, database_url="sqlite://"))


def test_expired_wrong_audience_and_wrong_issuer_are_refused(node: JwtService, admin, clock) -> None:  # type: ignore[no-untyped-def]
    token = node.issue(admin, "checkout").token
    clock.advance(timedelta(minutes=15))  # at exp, still inside the 30 s leeway
    assert node.verify(token)[0].name == "checkout"
    clock.advance(timedelta(seconds=30))
    with pytest.raises(TokenRejected, match="expired"):
        node.verify(token)
    for field, value, why in (("audience", "other-api", "wrong audience"), ("issuer", "evil", "wrong issuer")):
        other = JwtService(node.clients, JwtConfig(**{field: value}), node.keyring)
        with pytest.raises(TokenRejected, match=why):
            node.verify(other.issue(admin, "checkout").token)


def test_tampered_resigned_and_alg_confused_tokens_are_refused(node: JwtService, admin) -> None:  # type: ignore[no-untyped-def]
    node.clients.create(admin, "root", "admin", [])
    issued = node.issue(admin, "checkout")
    head, payload, signature = issued.token.split(".")
    claims = pyjwt.decode(issued.token, options={"verify_signature": False})
    header = pyjwt.get_unverified_header(issued.token)
    escalated = _b64u(json.dumps({**claims, "sub": "root"}).encode())
    with pytest.raises(TokenRejected, match="bad signature"):
        node.verify(f"{head}.{escalated}.{signature}")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BA")
    with pytest.raises(TokenRejected, match="bad signature|malformed"):
        node.verify(f"{head}.{payload}.{flipped}")
    other = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(TokenRejected, match="bad signature"):
        node.verify(pyjwt.encode({**claims, "sub": "root"}, other, algorithm="EdDSA", headers={"kid": issued.kid}))
    with pytest.raises(TokenRejected, match="algorithm not allowed"):
        node.verify(_forge({"alg": "none", "kid": issued.kid}, claims, lambda _m: b""))
    public = node.keyring.verification_key(issued.kid)
    assert public is not None
    pem = public.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for secret in (pem, public.public_der):
        forged = _forge({**header, "alg": "HS256"}, claims, lambda m, s=secret: hmac.new(s, m, hashlib.sha256).digest())
        with pytest.raises(TokenRejected, match="algorithm not allowed"):
            node.verify(forged)
    with pytest.raises(TokenRejected, match="unknown signing key"):
        node.verify(_forge({**header, "kid": "jwt-99-000000000000"}, claims, lambda _m: b"x"))
    with pytest.raises(TokenRejected, match="malformed"):
        node.verify("a.b.c")
    no_jti = {k: v for k, v in claims.items() if k != "jti"}
    key = node.keyring.signer()[2]
    with pytest.raises(TokenRejected, match="claim jti missing"):
        node.verify(pyjwt.encode(no_jti, key, algorithm="EdDSA", headers={"kid": issued.kid}))
    long_lived = {**claims, "exp": claims["iat"] + 3600}
    with pytest.raises(TokenRejected, match="longer than 15 minutes"):
        node.verify(pyjwt.encode(long_lived, key, algorithm="EdDSA", headers={"kid": issued.kid}))


def test_a_suspended_clients_tokens_are_refused_at_once_and_stay_refused(node: JwtService, admin, clock) -> None:  # type: ignore[no-untyped-def]
    token = node.issue(admin, "checkout").token
    assert node.verify(token)[0].name == "checkout"
    clock.advance(timedelta(seconds=2))
    node.clients.set_status(admin, "checkout", "suspended", "leaked")
    with pytest.raises(PermissionDeniedError, match="is suspended") as refused:
        node.verify(token)
    assert not isinstance(refused.value, TokenRejected)  # 403, as for an opaque token
    with pytest.raises(PermissionDeniedError, match="is suspended"):
        node.issue(admin, "checkout")
    clock.advance(timedelta(seconds=2))
    node.clients.set_status(admin, "checkout", "active")
    with pytest.raises(TokenRejected, match="issued before the client was last suspended"):
        node.verify(token)
    clock.advance(timedelta(seconds=1))
    assert node.verify(node.issue(admin, "checkout").token)[0].name == "checkout"


def test_keys_rotate_on_schedule_and_old_public_keys_leave_after_every_token_expired(  # type: ignore[no-untyped-def]
    node: JwtService, admin, clock
) -> None:
    old = node.issue(admin, "checkout")
    assert [k["kid"] for k in node.keyring.public_jwks()] == [old.kid]
    clock.advance(timedelta(hours=23, minutes=59))
    assert node.issue(admin, "checkout").kid == old.kid
    clock.advance(timedelta(minutes=2))  # 24 h after the key's creation: the next issue rotates
    new = node.issue(admin, "checkout")
    assert new.kid != old.kid
    with node.vault.engine.connect() as conn:
        rows = conn.execute(select(JwtSigningKey).order_by(JwtSigningKey.generation)).all()
    assert [r.generation for r in rows] == [1, 2]
    assert rows[0].salt is None and rows[0].retired_at is not None  # a retired key can no longer sign
    assert rows[1].salt is not None and rows[1].retired_at is None
    jwks = node.keyring.public_jwks()
    assert [k["kid"] for k in jwks] == [new.kid, old.kid]
    assert all(k["kty"] == "OKP" and k["crv"] == "Ed25519" and k["alg"] == "EdDSA" for k in jwks)
    rotations = [e for e in iter_events(node.vault.engine) if e["op"] == "jwt.rotate"]
    assert len(rotations) == 2 and new.kid in rotations[-1]["reason"]
    clock.advance(timedelta(minutes=15))  # every token of the old key has expired, the leeway has not
    assert old.kid in [k["kid"] for k in node.keyring.public_jwks()]
    clock.advance(timedelta(seconds=30))
    assert [k["kid"] for k in node.keyring.public_jwks()] == [new.kid]
    assert node.keyring.verification_key(old.kid) is None


def test_two_nodes_rotating_at_once_produce_one_new_key(vault_factory, admin, clock) -> None:  # type: ignore[no-untyped-def]
    services = []
    for _ in range(2):
        clients = ClientService(vault_factory(clock))
        services.append(JwtService(clients, JwtConfig(rotation=timedelta(hours=1))))
    services[0].clients.create(admin, "checkout", "service", [])
    clock.advance(timedelta(seconds=1))
    first = services[0].issue(admin, "checkout")
    assert services[1].verify(first.token)[0].name == "checkout"  # node B learns node A's key
    clock.advance(timedelta(hours=2))
    start = threading.Barrier(4)
    kids: list[str] = []
    failures: list[BaseException] = []

    def issue(service: JwtService) -> None:
        try:
            start.wait()
            kids.append(service.issue(admin, "checkout").kid)
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)

    threads = [threading.Thread(target=issue, args=(s,)) for s in services * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    with services[0].vault.engine.connect() as conn:
        rows = conn.execute(select(JwtSigningKey.generation, JwtSigningKey.retired_at)).all()
    assert sorted(r.generation for r in rows) == [1, 2]
    assert [r.generation for r in rows if r.retired_at is None] == [2]
    assert len(set(kids)) == 1 and kids[0] != first.kid
    rotations = [e for e in iter_events(services[0].vault.engine) if e["op"] == "jwt.rotate"]
    assert len(rotations) == 2  # generation 1, then generation 2 once
    with pytest.raises(IntegrityError), services[0].vault.engine.begin() as conn:
        conn.execute(
            insert(JwtSigningKey).values(
                generation=2, kid="dup", algorithm="EdDSA", public_key=b"x", created_at=clock.now()
            )
        )


def test_exchange_a_client_credential_for_a_jwt(node: JwtService, admin, clock) -> None:  # type: ignore[no-untyped-def]
    credential, until = node.clients.issue_token(admin, "checkout", timedelta(minutes=5))
    issued = node.exchange(credential, "checkout", source_ip="192.0.2.9")
    assert issued.expires_at == until.replace(microsecond=0)  # never outlives the credential
    assert node.verify(issued.token)[0].name == "checkout"
    event = [e for e in iter_events(node.vault.engine) if e["op"] == "auth.token"][-1]
    assert event["actor"] == "checkout" and event["source_ip"] == "192.0.2.9" and issued.jti in event["reason"]
    with pytest.raises(PermissionDeniedError, match="invalid or expired token"):
        node.exchange(credential, "someone-else")
    with pytest.raises(PermissionDeniedError, match="invalid or expired token"):
        node.exchange(issued.token)  # a JWT does not buy another JWT
    node.clients.revoke_tokens(admin, "checkout")
    with pytest.raises(PermissionDeniedError, match="invalid or expired token"):
        node.exchange(credential)
    long_credential, _ = node.clients.issue_token(admin, "checkout")
    clock.advance(timedelta(seconds=1))
    assert node.exchange(long_credential).ttl == timedelta(minutes=15)


def test_es256_signing_keys(node: JwtService, admin) -> None:  # type: ignore[no-untyped-def]
    config = JwtConfig(algorithm="ES256")
    es = JwtService(node.clients, config)
    es.keyring.rotate()
    issued = es.issue(admin, "checkout")
    assert pyjwt.get_unverified_header(issued.token)["alg"] == "ES256"
    assert es.verify(issued.token)[0].name == "checkout"
    jwk = es.keyring.public_jwks()[0]
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["kid"]) == ("EC", "P-256", "ES256", issued.kid)
    with pytest.raises(UsageError, match="jwt_algorithm"):
        JwtConfig(algorithm="HS256")


def test_migration_creates_the_signing_key_table_as_declared(vault) -> None:  # type: ignore[no-untyped-def]
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from keyguard.store.models import Base

    with vault.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diffs if "jwt_signing_keys" in repr(d)] == []
