"""WebAuthn ceremony verification (vault.webauthn_store) against a software authenticator, on both backends.

Refused: a replayed challenge, another session's or purpose's challenge, an expired one,
a wrong origin or rp id, a signature counter that does not go up, an unknown credential.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select, update

from keyguard.audit.reading import iter_events
from keyguard.errors import SecondFactorError
from keyguard.store.webauthn_tables import WebAuthnChallenge, WebAuthnCredential
from keyguard.vault.clients import ClientService
from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault
from keyguard.vault.webauthn_store import RelyingParty, WebAuthnService
from tests.web.soft_authenticator import SoftAuthenticator

ORIGIN = "http://localhost:8200"
SESSION = "a" * 64
OTHER_SESSION = "b" * 64
PURPOSE = "key.compromise:pay:2"


@pytest.fixture
def person(vault: Vault, admin: Principal) -> Principal:
    """A signed-in person (an operator client), as the dashboard sees them."""
    clients = ClientService(vault)
    clients.create(admin, "alice", "operator", [])
    token, _ = clients.issue_token(admin, "alice")
    return clients.authenticate(token)


@pytest.fixture
def service(vault: Vault) -> WebAuthnService:
    return WebAuthnService(vault, RelyingParty(rp_id="localhost", origins=(ORIGIN,)))


def _enrolled(service: WebAuthnService, person: Principal) -> SoftAuthenticator:
    key = SoftAuthenticator(origin=ORIGIN)
    options = json.loads(service.registration_options(person, SESSION))
    service.register(person, SESSION, key.register(options), "test key")
    return key


def _options(service: WebAuthnService, person: Principal, session: str = SESSION, purpose: str = PURPOSE) -> Any:
    return json.loads(service.authentication_options(person, session, purpose))


def test_enrol_then_assert_and_counter_is_kept(vault: Vault, person: Principal, service: WebAuthnService) -> None:
    key = _enrolled(service, person)
    assert service.has_credentials(person.client_id or 0)
    options = _options(service, person)
    assert options["rpId"] == "localhost" and options["allowCredentials"][0]["id"]
    service.verify(person, SESSION, PURPOSE, key.assert_(options))
    (row,) = service.credentials(person.client_id or 0)
    assert row["sign_count"] == key.counter == 2 and row["last_used_at"] is not None


def test_replayed_challenge_is_refused(vault: Vault, person: Principal, service: WebAuthnService) -> None:
    key = _enrolled(service, person)
    answer = key.assert_(_options(service, person))
    service.verify(person, SESSION, PURPOSE, answer)
    with pytest.raises(SecondFactorError, match="used or expired"):
        service.verify(person, SESSION, PURPOSE, answer)  # the same challenge twice


def test_challenge_is_bound_to_session_and_purpose(vault: Vault, person: Principal, service: WebAuthnService) -> None:
    key = _enrolled(service, person)
    with pytest.raises(SecondFactorError, match="used or expired"):
        service.verify(person, OTHER_SESSION, PURPOSE, key.assert_(_options(service, person)))
    with pytest.raises(SecondFactorError, match="used or expired"):
        service.verify(person, SESSION, "key.compromise:pay:1", key.assert_(_options(service, person)))
    # A failed try used the challenge up: the right session and purpose cannot use it afterwards.
    answer = key.assert_(_options(service, person))
    with pytest.raises(SecondFactorError):
        service.verify(person, OTHER_SESSION, PURPOSE, answer)
    with pytest.raises(SecondFactorError, match="used or expired"):
        service.verify(person, SESSION, PURPOSE, answer)


def test_expired_challenge_is_refused(vault: Vault, person: Principal, service: WebAuthnService) -> None:
    key = _enrolled(service, person)
    options = _options(service, person)
    with vault.engine.begin() as conn:
        conn.execute(update(WebAuthnChallenge).values(expires_at=vault.clock.now().replace(year=2000)))
    with pytest.raises(SecondFactorError, match="used or expired"):
        service.verify(person, SESSION, PURPOSE, key.assert_(options))


def test_wrong_origin_or_rp_id_is_refused(vault: Vault, person: Principal, service: WebAuthnService) -> None:
    key = _enrolled(service, person)
    with pytest.raises(SecondFactorError, match="origin"):
        service.verify(person, SESSION, PURPOSE, key.assert_(_options(service, person), origin="http://evil.example"))
    with pytest.raises(SecondFactorError, match="(?i)rp ?id"):
        service.verify(person, SESSION, PURPOSE, key.assert_(_options(service, person), rp_id="evil.example"))
    other = SoftAuthenticator(origin="http://localhost:9999")  # enrolment from another origin
    options = json.loads(service.registration_options(person, SESSION))
    with pytest.raises(SecondFactorError, match="origin"):
        service.register(person, SESSION, other.register(options))
    assert len(service.credentials(person.client_id or 0)) == 1


def test_counter_regression_is_refused(vault: Vault, person: Principal, service: WebAuthnService) -> None:
    key = _enrolled(service, person)
    service.verify(person, SESSION, PURPOSE, key.assert_(_options(service, person), counter=10))
    for stale in (10, 3):  # the same counter again, or a lower one: a cloned authenticator
        with pytest.raises(SecondFactorError, match="(?i)count"):
            service.verify(person, SESSION, PURPOSE, key.assert_(_options(service, person), counter=stale))
    with vault.engine.connect() as conn:
        assert conn.execute(select(WebAuthnCredential.sign_count)).scalar_one() == 10
    service.verify(person, SESSION, PURPOSE, key.assert_(_options(service, person), counter=11))


def test_unknown_credential_and_garbage_are_refused(vault: Vault, person: Principal, service: WebAuthnService) -> None:
    _enrolled(service, person)
    stranger = SoftAuthenticator(origin=ORIGIN)
    with pytest.raises(SecondFactorError, match="not enrolled"):
        service.verify(person, SESSION, PURPOSE, stranger.assert_(_options(service, person)))
    for garbage in ("not json", "[]", json.dumps({"response": {}}), ["a list"], 7, "x" * 20_000):
        with pytest.raises(SecondFactorError):
            service.verify(person, SESSION, PURPOSE, garbage)  # type: ignore[arg-type]
    with pytest.raises(SecondFactorError):
        service.register(person, SESSION, ["a list"])  # type: ignore[arg-type]


def test_refusals_are_audited_without_secrets(vault: Vault, person: Principal, service: WebAuthnService) -> None:
    key = _enrolled(service, person)
    options = _options(service, person)
    answer = key.assert_(options, origin="http://evil.example")
    with pytest.raises(SecondFactorError):
        service.verify(person, SESSION, PURPOSE, answer)
    events = [e for e in iter_events(vault.engine) if e["op"] == "auth.webauthn"]
    assert events and events[-1]["result"] == "denied" and events[-1]["actor"] == "alice"
    text = json.dumps(events)
    assert options["challenge"] not in text and answer["response"]["signature"] not in text


def test_migration_0012_matches_the_webauthn_tables(vault: Vault) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from keyguard.store.models import Base

    with vault.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    names = ("webauthn_credentials", "webauthn_challenges", "web_sessions")
    assert [d for d in diffs if any(n in repr(d) for n in names)] == []
