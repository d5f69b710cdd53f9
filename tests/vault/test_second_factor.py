"""Issue 12 points 5 and 6: TOTP codes once, lockout after wrong codes, MFA for administration, token lifetimes.

Every test runs on SQLite and on PostgreSQL; the "two nodes" are two vault
instances over one database.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest

from keyguard.audit.reading import iter_events
from keyguard.clock import FrozenClock
from keyguard.errors import (
    MfaRequiredError,
    PermissionDeniedError,
    SecondFactorError,
    SecondFactorLockedError,
    UsageError,
)
from keyguard.vault.clients import ClientService, configured_max_ttl
from keyguard.vault.principal import ADMIN_OPS, parse_grants
from keyguard.vault.totp import MAX_FAILURES, lockout_period

T0 = datetime(2026, 11, 27, 22, 0, 5, tzinfo=UTC)


def _enrolled(vault, admin, name: str = "oncall", role: str = "operator"):  # type: ignore[no-untyped-def]
    clients = ClientService(vault)
    clients.create(admin, name, role, [])
    token, _ = clients.issue_token(admin, name)
    secret, _uri = clients.enroll_mfa(admin, name)
    return clients, token, secret


def _wrong(secret: str, at: datetime) -> str:
    totp = pyotp.TOTP(secret)
    valid = {totp.at(at + timedelta(seconds=30 * k)) for k in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


def _otp_events(vault):  # type: ignore[no-untyped-def]
    return [e for e in iter_events(vault.engine) if e["op"] == "auth.otp"]


def test_a_code_is_accepted_once_on_every_node(vault_factory, admin) -> None:
    clock = FrozenClock(T0)
    node_a, node_b = vault_factory(clock), vault_factory(clock)
    clients, token, secret = _enrolled(node_a, admin)
    totp = pyotp.TOTP(secret)
    code = totp.at(clock.now())
    assert clients.authenticate(token, otp=code).mfa
    with pytest.raises(SecondFactorError):
        clients.authenticate(token, otp=code)  # replayed on the same node
    with pytest.raises(SecondFactorError):
        ClientService(node_b).authenticate(token, otp=code)  # replayed on another node
    with pytest.raises(SecondFactorError):
        clients.authenticate(token, otp=totp.at(clock.now() - timedelta(seconds=30)))  # an older step
    clock.advance(timedelta(seconds=30))
    assert ClientService(node_b).authenticate(token, otp=totp.at(clock.now())).mfa  # the next code works
    denied = _otp_events(node_a)
    assert [e["result"] for e in denied] == ["denied"] * 3
    assert all("already used" in e["reason"] for e in denied)
    dumped = json.dumps(list(iter_events(node_a.engine)))
    assert code not in dumped and secret not in dumped and token not in dumped


def test_two_nodes_racing_with_one_code_accept_it_once(vault_factory, admin) -> None:
    node_a, node_b = vault_factory(), vault_factory()
    clients, token, secret = _enrolled(node_a, admin)
    services = [ClientService(node_a), ClientService(node_b)]
    code = pyotp.TOTP(secret).at(node_a.clock.now())
    start = threading.Barrier(6)
    outcomes: list[str] = []

    def attempt(service: ClientService) -> None:
        start.wait()
        try:
            service.authenticate(token, otp=code)
            outcomes.append("accepted")
        except PermissionDeniedError:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(services[i % 2],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["accepted"] + ["refused"] * 5


def test_wrong_codes_lock_the_second_factor_for_growing_periods(vault_factory, admin) -> None:
    clock = FrozenClock(T0)
    node_a = vault_factory(clock)
    clients, token, secret = _enrolled(node_a, admin)
    totp = pyotp.TOTP(secret)
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(SecondFactorError):
            clients.authenticate(token, otp=_wrong(secret, clock.now()))
    with pytest.raises(SecondFactorLockedError) as locked:
        clients.authenticate(token, otp=_wrong(secret, clock.now()))
    assert locked.value.retry_after == 30 and locked.value.exit_code == 3 and locked.value.http_status == 429
    # Locked: even the right code is refused, here and on a node started afterwards.
    with pytest.raises(SecondFactorLockedError):
        clients.authenticate(token, otp=totp.at(clock.now()))
    restarted = vault_factory(clock)
    with pytest.raises(SecondFactorLockedError):
        ClientService(restarted).authenticate(token, otp=totp.at(clock.now()))
    clock.advance(timedelta(seconds=31))
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(SecondFactorError):
            clients.authenticate(token, otp=_wrong(secret, clock.now()))
    with pytest.raises(SecondFactorLockedError) as again:
        clients.authenticate(token, otp=_wrong(secret, clock.now()))
    assert again.value.retry_after == 60  # the second lockout lasts twice as long
    clock.advance(timedelta(seconds=61))
    assert ClientService(restarted).authenticate(token, otp=totp.at(clock.now())).mfa
    reasons = [e["reason"] for e in _otp_events(node_a)]
    assert sum("locked until" in r for r in reasons) == 2
    assert sum(r == "second factor locked" for r in reasons) == 2
    assert "wrong second factor (failure 1 of 5)" in reasons


def test_lockout_periods_grow_and_are_capped() -> None:
    assert [lockout_period(n).total_seconds() for n in range(4)] == [30, 60, 120, 240]
    assert lockout_period(40) == timedelta(hours=24)


def test_failures_outside_the_window_do_not_add_up(vault_factory, admin) -> None:
    clock = FrozenClock(T0)
    vault = vault_factory(clock)
    clients, token, secret = _enrolled(vault, admin)
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(SecondFactorError):
            clients.authenticate(token, otp=_wrong(secret, clock.now()))
    clock.advance(timedelta(minutes=16))
    with pytest.raises(SecondFactorError, match="invalid second factor"):
        clients.authenticate(token, otp=_wrong(secret, clock.now()))
    assert clients.authenticate(token, otp=pyotp.TOTP(secret).at(clock.now())).mfa


def test_administrative_operations_need_the_second_factor(vault, admin) -> None:
    vault.mfa_required = True
    vault.create_key(admin, "pay", "encrypt")
    clients, token, secret = _enrolled(vault, admin, "lead", "admin")
    clients.create(admin, "billing", "service", parse_grants(["pay:encrypt"]))
    lead = clients.authenticate(token)
    assert not lead.mfa
    refused = [
        lambda: clients.create(lead, "intruder", "admin", []),
        lambda: clients.issue_token(lead, "billing"),
        lambda: clients.delete_grants(lead, "billing"),
        lambda: clients.enroll_mfa(lead, "billing"),
    ]
    for call in refused:
        with pytest.raises(MfaRequiredError, match="needs a second factor"):
            call()
    clients.set_status(lead, "billing", "suspended")  # taking access away needs no second factor
    with pytest.raises(MfaRequiredError):
        clients.set_status(lead, "billing", "active")  # giving it back does
    assert [c.name for c in clients.list(admin)] == ["billing", "lead"]
    denied = [e for e in iter_events(vault.engine) if e["result"] == "denied" and e["actor"] == "lead"]
    assert {e["op"] for e in denied} == {
        "client.create",
        "client.token",
        "client.config",
        "client.mfa",
        "client.resume",
    }
    strong = clients.authenticate(token, otp=pyotp.TOTP(secret).at(vault.clock.now()))
    clients.create(strong, "auditor", "auditor", [])
    clients.set_status(strong, "billing", "active")
    assert clients.issue_token(strong, "billing")[0].startswith("kgt_")
    assert {"client.create", "client.config", "client.token", "connector.config", "policy.config"} <= ADMIN_OPS


def test_token_lifetime_is_bounded_by_configuration(vault, admin, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KEYGUARD_HOME", str(tmp_path / "home"))
    clients = ClientService(vault)
    clients.create(admin, "svc", "service", [])
    with pytest.raises(UsageError, match="token lifetime 30d exceeds the maximum of 1h") as long:
        clients.issue_token(admin, "svc", timedelta(days=30))
    assert long.value.exit_code == 2 and long.value.http_status == 422
    _token, expires = clients.issue_token(admin, "svc")
    assert expires - vault.clock.now() <= timedelta(hours=1)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "keyguard.toml").write_text('[auth]\nmax_token_ttl = "15m"\n')
    assert configured_max_ttl() == timedelta(minutes=15)
    short = ClientService(vault)
    with pytest.raises(UsageError, match="maximum of 15m"):
        short.issue_token(admin, "svc", timedelta(hours=1))
    _token, expires = short.issue_token(admin, "svc")
    assert timedelta(minutes=14) < expires - vault.clock.now() <= timedelta(minutes=15)
    refused = [e for e in iter_events(vault.engine) if e["op"] == "client.token" and e["result"] != "ok"]
    assert len(refused) == 2 and "exceeds the maximum" in refused[0]["reason"]
    (tmp_path / "home" / "keyguard.toml").write_text('[auth]\nmax_token_ttl = "forever"\n')
    with pytest.raises(UsageError, match="max_token_ttl"):
        configured_max_ttl()


def test_migration_creates_the_otp_table_as_declared(vault) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from keyguard.store.models import Base

    with vault.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diffs if "client_otp" in repr(d)] == []
