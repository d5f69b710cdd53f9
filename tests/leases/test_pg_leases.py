"""Dynamic PostgreSQL credentials against the real server: issue, use, renew, revoke, expire, clean up."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import select, text

from keyguard.errors import ConflictError, NotFoundError, UsageError
from keyguard.store.lease_tables import Lease
from tests.conftest import PG_ADMIN_URL

from .conftest import PgTarget, audit_events, pg_role_exists


def _login(target: PgTarget, user: str, password: str) -> psycopg.Connection:
    return psycopg.connect(f"host=127.0.0.1 port=5432 dbname={target.dbname}", user=user, password=password,
                           autocommit=True, connect_timeout=3)


def test_issue_makes_a_user_with_the_template_grants(pg_target, leases, vault, clock) -> None:
    manager = leases(pg_target.connector())
    issued = manager.issue("pg/role/readonly", timedelta(minutes=15), "tester")
    doc = issued.to_dict()
    assert set(doc) == {"lease_id", "username", "password", "expires_at"}
    assert doc["lease_id"].startswith("pg/role/readonly/") and doc["username"].startswith("kg_readonly_")
    assert len(doc["password"]) >= 40
    with _login(pg_target, issued.username, doc["password"]) as conn:
        assert conn.execute("SELECT name FROM items").fetchall() == [("one",)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO items VALUES (2, 'two')")
    with psycopg.connect(PG_ADMIN_URL) as conn:
        until, = conn.execute("SELECT rolvaliduntil FROM pg_roles WHERE rolname = %s", (issued.username,)).fetchone()
    assert abs(until - issued.expires_at) < timedelta(seconds=1)  # VALID UNTIL: the second line of defence
    # the password is nowhere in keyguard's database: not the lease, not the audit log
    with vault.engine.connect() as conn:
        dump = " ".join(str(v) for row in conn.execute(select(Lease)).all() for v in row)
        dump += " ".join(str(v) for row in conn.execute(text("SELECT * FROM audit_events")).all() for v in row)
    assert doc["password"] not in dump
    [event] = audit_events(vault)
    assert (event["op"], event["key"], event["result"], event["actor"]) == ("lease.issue", "pg/role/readonly", "ok",
                                                                            "tester")
    assert issued.username in event["reason"]


def test_ttl_is_bounded_and_renew_caps_at_max_ttl(pg_target, leases, clock) -> None:
    manager = leases(pg_target.connector())
    with pytest.raises(UsageError, match="max_ttl"):
        manager.issue("pg/role/readonly", timedelta(hours=2), "tester")
    issued = manager.issue("pg/role/readonly", None, "tester")  # default_ttl 15m
    assert issued.expires_at == clock.now() + timedelta(minutes=15)
    clock.advance(timedelta(minutes=10))
    renewed = manager.renew(issued.lease_id, timedelta(minutes=30), "tester")
    assert renewed["expires_at"].startswith((clock.now() + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M"))
    capped = manager.renew(issued.lease_id, timedelta(hours=5), "tester")
    assert capped["expires_at"] == capped["max_expires_at"]
    with psycopg.connect(PG_ADMIN_URL) as conn:
        until, = conn.execute("SELECT rolvaliduntil FROM pg_roles WHERE rolname = %s", (issued.username,)).fetchone()
    assert until.isoformat().startswith(capped["max_expires_at"][:19].replace("T", "T"))
    with pytest.raises(NotFoundError):
        manager.renew("pg/role/readonly/nope", None, "tester")


def test_revoke_drops_the_user_and_ends_its_sessions(pg_target, leases, vault) -> None:
    manager = leases(pg_target.connector())
    issued = manager.issue("pg/role/readonly", timedelta(minutes=5), "tester")
    session = _login(pg_target, issued.username, issued.password.reveal())
    session.execute("SELECT 1")
    lease = manager.revoke(issued.lease_id, "responder")
    assert lease["state"] == "revoked" and lease["revoked_at"]
    assert not pg_role_exists(issued.username)
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")  # terminated
    with pytest.raises(psycopg.OperationalError):
        _login(pg_target, issued.username, issued.password.reveal())
    assert manager.revoke(issued.lease_id, "responder")["state"] == "revoked"  # idempotent, audited once
    ops = [(e["op"], e["actor"]) for e in audit_events(vault)]
    assert ops == [("lease.issue", "tester"), ("lease.revoke", "responder")]
    assert "1 session(s) ended" in audit_events(vault)[-1]["reason"]
    with pytest.raises(ConflictError):
        manager.renew(issued.lease_id, None, "tester")


def test_revoke_prefix_revokes_every_lease_of_the_role_only(pg_target, leases) -> None:
    other = pg_target.connector("pg2")
    manager = leases(pg_target.connector(), other)
    mine = [manager.issue("pg/role/readonly", timedelta(minutes=5), "t") for _ in range(3)]
    kept = manager.issue("pg2/role/readonly", timedelta(minutes=5), "t")
    done = manager.revoke_prefix("pg/role/readonly", "responder")
    assert sorted(d["lease_id"] for d in done) == sorted(i.lease_id for i in mine)
    assert not any(pg_role_exists(i.username) for i in mine)
    assert pg_role_exists(kept.username)
    assert [x["lease_id"] for x in manager.list_leases()] == [kept.lease_id]
    assert manager.revoke_prefix("pg/role/readonly", "responder") == []
    with pytest.raises(UsageError):
        manager.revoke_prefix("/", "responder")


def test_reap_drops_expired_users_once_even_from_a_new_manager(pg_target, leases, vault, clock) -> None:
    first = leases(pg_target.connector())
    short = first.issue("pg/role/readonly", timedelta(seconds=30), "t")
    long = first.issue("pg/role/readonly", timedelta(minutes=10), "t")
    first.close()
    clock.advance(timedelta(seconds=31))
    restarted = leases(pg_target.connector())  # state is in the database: a restart loses nothing
    report = restarted.reap()
    assert report.expired == [short.lease_id] and not report.failed
    assert not pg_role_exists(short.username) and pg_role_exists(long.username)
    assert restarted.reap().expired == []
    assert [e["op"] for e in audit_events(vault)].count("lease.expire") == 1
    assert restarted.get(short.lease_id)["state"] == "expired"
    assert restarted.next_expiry() is not None


def test_a_user_created_but_never_confirmed_is_cleaned_up(pg_target, leases, vault, clock) -> None:
    manager = leases(pg_target.connector(), pending_grace=timedelta(seconds=10))
    spec = manager.spec("pg/role/readonly")
    backend = manager._backend(spec)
    # what a crash between CREATE ROLE and the confirmation leaves: the intent row and the user
    from keyguard.connectors.secret import Secret
    from keyguard.store.db import write_tx

    with write_tx(vault.engine) as conn:
        conn.execute(Lease.__table__.insert().values(
            id="pg/role/readonly/crashed", path="pg/role/readonly", connector="pg", role="readonly",
            backend="postgresql", username="kg_readonly_crashed0", state="pending", actor="t",
            issued_at=clock.now(), expires_at=clock.now() + timedelta(minutes=5),
            max_expires_at=clock.now() + timedelta(hours=1), updated_at=clock.now(), attempts=0, detail=""))
    backend.create("kg_readonly_crashed0", Secret("x" * 32), clock.now() + timedelta(minutes=5))
    assert manager.reap().cleaned == []  # still within the grace: the issuer may be mid-way
    clock.advance(timedelta(seconds=11))
    assert manager.reap().cleaned == ["pg/role/readonly/crashed"]
    assert not pg_role_exists("kg_readonly_crashed0")
    assert manager.get("pg/role/readonly/crashed")["state"] == "failed"
    assert [e["op"] for e in audit_events(vault)] == ["lease.cleanup"]


def test_a_missing_template_fails_cleanly_and_leaves_nothing(pg_target, leases, vault) -> None:
    manager = leases(pg_target.connector(template="kg_no_such_template"))
    with pytest.raises(NotFoundError, match="template role"):
        manager.issue("pg/role/readonly", None, "t")
    [lease] = manager.list_leases(all_states=True)
    assert lease["state"] == "failed" and not pg_role_exists(lease["username"])
    [event] = audit_events(vault)
    assert (event["op"], event["result"]) == ("lease.issue", "error")


def test_lease_window_of_a_username(pg_target, leases, clock) -> None:
    manager = leases(pg_target.connector())
    issued = manager.issue("pg/role/readonly", timedelta(minutes=5), "t")
    clock.advance(timedelta(minutes=1))
    manager.revoke(issued.lease_id, "t")
    window = manager.window(issued.username)
    assert window is not None
    assert window["issued_at"] < window["revoked_at"] < window["expires_at"]
    assert manager.window("kg_nobody") is None


def test_the_assessment_window_of_a_leaked_dynamic_credential(pg_target, leases, vault, clock) -> None:
    from keyguard.assess.credentials import credential_window

    manager = leases(pg_target.connector())
    issued_at = clock.now()
    issued = manager.issue("pg/role/readonly", timedelta(minutes=5), "t")
    clock.advance(timedelta(minutes=2))
    manager.revoke(issued.lease_id, "t")
    clock.advance(timedelta(hours=1))
    # exposed long before the issue: the window starts at the issue and ends at the revocation
    window = credential_window(vault.engine, issued.username, issued_at - timedelta(days=1), clock.now())
    assert window is not None and window["usable"]
    assert window["from"] == window["issued_at"] and window["until"] == window["revoked_at"]
    # exposed after the revocation: nothing could be done with it
    late = credential_window(vault.engine, issued.username, clock.now() - timedelta(minutes=1), clock.now())
    assert late is not None and late["usable"] is False
    assert credential_window(vault.engine, "kg_nobody", issued_at, clock.now()) is None


def test_a_user_that_cannot_be_dropped_is_retried_with_backoff(pg_target, leases, vault, clock) -> None:
    manager = leases(pg_target.connector())
    issued = manager.issue("pg/role/readonly", timedelta(seconds=10), "t")
    manager.connectors = {}  # the connector was removed from keyguard.toml: the user cannot be reached
    manager._backends.clear()
    clock.advance(timedelta(seconds=11))
    assert manager.reap().failed == [issued.lease_id]
    assert manager.reap().failed == [issued.lease_id]  # backing off: not tried again at once
    lease = manager.get(issued.lease_id)
    assert lease["state"] == "active" and "unknown connector" in lease["detail"]
    errors = [e for e in audit_events(vault) if e["result"] == "error"]
    assert [e["op"] for e in errors] == ["lease.expire"]  # recorded once, not once per try
    manager.connectors = {"pg": pg_target.connector()}
    clock.advance(timedelta(seconds=2))
    assert manager.reap().expired == [issued.lease_id]
    assert not pg_role_exists(issued.username)


def test_an_issue_whose_audit_event_cannot_be_written_drops_the_user(pg_target, leases, vault, monkeypatch) -> None:
    from keyguard.errors import AuditWriteError

    manager = leases(pg_target.connector())

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk full")

    monkeypatch.setattr(vault.audit, "append_in", refuse)
    with pytest.raises(AuditWriteError):
        manager.issue("pg/role/readonly", timedelta(minutes=5), "t")
    [lease] = manager.list_leases(all_states=True)
    assert lease["state"] == "failed" and not pg_role_exists(lease["username"])
