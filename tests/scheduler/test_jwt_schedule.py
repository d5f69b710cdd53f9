"""The JWT signing key rotates on schedule from ``serve``'s scheduler, on the leader only, on a controlled clock."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import jwt as pyjwt

from keyguard.audit.reading import iter_events
from keyguard.clock import FrozenClock
from keyguard.response.scheduler.leader import Leadership
from keyguard.response.scheduler.service import Scheduler
from keyguard.vault.clients import ClientService
from keyguard.vault.jwt_config import JwtConfig
from keyguard.vault.jwt_tokens import JwtService
from keyguard.vault.principal import parse_grants

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PERIOD = timedelta(hours=1)


def _node(vault, lock_id: int, admin=None) -> tuple[JwtService, Scheduler]:  # type: ignore[no-untyped-def]
    clients = ClientService(vault)
    if admin is not None:
        clients.create(admin, "checkout", "service", parse_grants(["pay:encrypt"]))
    jwts = JwtService(clients, JwtConfig(rotation=PERIOD))
    leader = Leadership(vault.engine, lock_id=lock_id)
    return jwts, Scheduler(vault, None, rotate=False, leadership=leader, jwt_keyring=jwts.keyring, jwt_every=0)


def test_the_leader_rotates_the_signing_key_when_due_without_a_token_being_issued(  # type: ignore[no-untyped-def]
        vault_factory, admin) -> None:
    clock = FrozenClock(T0)
    lock_id = 7_310_000 + secrets.randbelow(10_000)  # this test's own: other suites share the PostgreSQL
    first_jwts, first = _node(vault_factory(clock), lock_id, admin)
    second_jwts, second = _node(vault_factory(clock), lock_id)
    try:
        assert first.run_once() == {"leader": True}  # no signing key before the first token: nothing to do
        early = first_jwts.issue(admin, "checkout")
        clock.advance(PERIOD - timedelta(minutes=5))
        assert "jwt" not in first.run_once()  # not due yet
        signed_late = first_jwts.issue(admin, "checkout")  # still the first key: it signs until the period ends
        assert signed_late.kid == early.kid
        clock.advance(timedelta(minutes=6))
        assert second.run_once() == {"leader": False}  # a follower never rotates
        assert first.run_once()["jwt"] == {"generation": 2}
        rotations = [e for e in iter_events(first.vault.engine) if e["op"] == "jwt.rotate"]
        assert [e["actor"] for e in rotations] == ["keyguard:jwt-rotation"] * 2  # the first key, then on schedule
        assert "jwt" not in first.run_once()  # once per period
        # the old public key stays published while a token it signed is still valid
        kids = [k["kid"] for k in second_jwts.keyring.public_jwks()]
        assert kids[1] == early.kid and len(kids) == 2
        principal, _ = second_jwts.verify(signed_late.token)
        assert principal.name == "checkout"
        fresh = second_jwts.issue(admin, "checkout")  # every node signs with the new key at once
        assert fresh.kid == kids[0] != early.kid
        assert pyjwt.get_unverified_header(fresh.token)["kid"] == kids[0]
        assert len([e for e in iter_events(first.vault.engine) if e["op"] == "jwt.rotate"]) == 2
    finally:
        first.stop()
        second.stop()
