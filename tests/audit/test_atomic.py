"""A state change and its audit event commit together or not at all (both backends).

The fault is injected into the audit write itself: hashing the event raises, so
on the in-transaction path it fails after the state statements ran. Nothing of
the change may persist.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select, text

from keyguard.audit.reading import verify_log
from keyguard.errors import KeyguardError
from keyguard.store.tables import AuditEvent, Client, Grant, Token
from keyguard.vault.clients import ClientService


@pytest.fixture
def broken_audit(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to make every audit write fail from then on."""

    def boom(*_args: Any) -> str:
        raise RuntimeError("injected audit fault")

    def arm() -> None:
        monkeypatch.setattr("keyguard.audit.log.linked_hash", boom)

    return arm


def _events(vault) -> int:  # type: ignore[no-untyped-def]
    with vault.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(AuditEvent)).scalar_one())


def _state(vault, name: str, version: int) -> str:  # type: ignore[no-untyped-def]
    with vault.engine.connect() as conn:
        return str(
            conn.execute(
                text(
                    "SELECT v.state FROM key_versions v JOIN keys k ON k.id = v.key_id "
                    "WHERE k.name = :n AND v.version = :v"
                ),
                {"n": name, "v": version},
            ).scalar_one()
        )


def test_client_create_rolls_back(vault, admin, broken_audit) -> None:
    clients = ClientService(vault)
    broken_audit()
    with pytest.raises(KeyguardError):
        clients.create(admin, "billing", "service", [("pay", "encrypt")])
    with vault.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Client)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(Grant)).scalar_one() == 0


@pytest.mark.parametrize("target", ["disabled", "compromised"])
def test_key_state_change_rolls_back(vault, admin, broken_audit, target: str) -> None:
    vault.create_key(admin, "pay", "encrypt")
    before = _events(vault)
    broken_audit()
    with pytest.raises(KeyguardError):
        vault.set_state(admin, "pay", 1, target)
    assert _state(vault, "pay", 1) == "active"
    assert _events(vault) == before
    vault._invalidate()
    assert vault.key_info("pay").versions[1].state == "active"


def test_key_rotate_rolls_back(vault, admin, broken_audit) -> None:
    vault.create_key(admin, "pay", "encrypt")
    broken_audit()
    with pytest.raises(KeyguardError):
        vault.rotate(admin, "pay")
    vault._invalidate()
    assert sorted(vault.key_info("pay").versions) == [1]
    assert _state(vault, "pay", 1) == "active"


def test_key_create_rolls_back(vault, admin, broken_audit) -> None:
    broken_audit()
    with pytest.raises(KeyguardError):
        vault.create_key(admin, "pay", "encrypt")
    with vault.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM keys")).scalar_one() == 0


def test_grant_and_client_changes_roll_back(vault, admin, broken_audit) -> None:
    clients = ClientService(vault)
    clients.create(admin, "billing", "service", [("pay", "encrypt"), ("pay", "decrypt")])
    broken_audit()
    with pytest.raises(KeyguardError):
        clients.delete_grants(admin, "billing")
    with pytest.raises(KeyguardError):
        clients.set_status(admin, "billing", "suspended")
    with pytest.raises(KeyguardError):
        clients.issue_token(admin, "billing")
    view = clients.get("billing")
    assert sorted(view.grants) == ["pay:decrypt", "pay:encrypt"] and view.status == "active"
    with vault.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Token)).scalar_one() == 0


def test_events_name_what_was_committed(vault, admin) -> None:
    vault.create_key(admin, "pay", "encrypt")
    vault.rotate(admin, "pay")
    vault.set_state(admin, "pay", 1, "disabled", reason="leaked")
    ClientService(vault).create(admin, "billing", "service", [("pay", "encrypt")])
    with vault.engine.connect() as conn:
        rows = conn.execute(select(AuditEvent.op, AuditEvent.version, AuditEvent.reason).order_by(AuditEvent.id)).all()
    assert [(r.op, r.version) for r in rows] == [
        ("key.create", 1),
        ("key.rotate", 2),
        ("key.disable", 1),
        ("client.create", None),
    ]
    assert rows[2].reason == "leaked" and "billing" in rows[3].reason
    assert verify_log(vault.engine, vault.checkpoint_key)["events"] == 4


def test_state_changes_and_group_commits_interleave(vault, admin) -> None:
    """State transactions lock the head first: no deadlock with batches that record last-used times."""
    vault.create_key(admin, "pay", "encrypt")
    stop = threading.Event()
    errors: list[BaseException] = []

    def crypto() -> None:
        try:
            while not stop.is_set():
                vault.encrypt(admin, "pay", b"x")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=crypto) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(8):
            vault.rotate(admin, "pay")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert errors == []
    assert verify_log(vault.engine, vault.checkpoint_key)["events"] > 9


def test_migration_0007_matches_the_audit_tables(vault) -> None:  # type: ignore[no-untyped-def]
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from keyguard.store.models import Base

    with vault.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    # audit_events has expression indexes of the assessment (0004) that the models do not declare
    assert [d for d in diffs if "audit_head" in repr(d)] == []
