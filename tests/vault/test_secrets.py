"""Versioned secrets on both backends: sealing, versions, grants, destroy, tamper, readers, rollout target."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from keyguard.audit.reading import verify_log
from keyguard.clock import FrozenClock
from keyguard.errors import IntegrityError, NotFoundError, PermissionDeniedError, RefusedError, UsageError
from keyguard.store.secret_tables import SecretVersionRow
from keyguard.store.tables import AuditEvent
from keyguard.vault.clients import ClientService
from keyguard.vault.principal import Principal, parse_grants
from keyguard.vault.secrets import SecretStore, parse_secret_ref, readers_since
from keyguard.vault.service import Vault


def _client(vault: Vault, admin: Principal, name: str, role: str, grants: list[str]) -> Principal:
    service = ClientService(vault)
    service.create(admin, name, role, parse_grants(grants))
    token, _ = service.issue_token(admin, name)
    return service.authenticate(token, source_ip="10.1.2.3")


def _rows(vault: Vault, name: str) -> list[SecretVersionRow]:
    with vault.engine.connect() as conn:
        return list(conn.execute(select(SecretVersionRow).where(SecretVersionRow.name == name)).all())  # type: ignore[arg-type]


def test_put_get_versions_and_sealing(vault: Vault, admin: Principal) -> None:
    store = SecretStore(vault)
    assert store.put(admin, "billing-db", b"first-password") == 1
    assert store.put(admin, "billing-db", b"second-password") == 2
    assert store.get(admin, "billing-db").value == b"second-password"
    assert store.get(admin, "billing-db").version == 2
    assert store.get(admin, "billing-db", 1).value == b"first-password"
    for row in _rows(vault, "billing-db"):
        assert row.sealed is not None and b"password" not in row.sealed
    info = store.info("billing-db")
    assert [v["version"] for v in info.versions] == [1, 2] and info.latest == 2
    assert [i.name for i in store.list(admin)] == ["billing-db"]
    assert "password" not in repr(store.get(admin, "billing-db"))
    # a second store (another process) opens what the first sealed
    assert SecretStore(Vault.open(vault.engine, None)).get(admin, "billing-db", 1).value == b"first-password"


def test_bad_input_and_missing(vault: Vault, admin: Principal) -> None:
    store = SecretStore(vault)
    with pytest.raises(UsageError):
        store.put(admin, "Bad Name", b"x")
    with pytest.raises(UsageError):
        store.put(admin, "ok", b"")
    with pytest.raises(UsageError):
        store.put(admin, "ok", b"x" * (64 * 1024 + 1))
    with pytest.raises(NotFoundError):
        store.get(admin, "nope")
    store.put(admin, "ok", b"v")
    with pytest.raises(NotFoundError):
        store.get(admin, "ok", 2)
    with pytest.raises(NotFoundError):
        store.rotate(admin, "absent", b"v")
    assert parse_secret_ref("db@3") == ("db", 3)
    with pytest.raises(UsageError):
        parse_secret_ref("db@0")


def test_rotate_generates_a_random_value(vault: Vault, admin: Principal) -> None:
    store = SecretStore(vault)
    store.put(admin, "api", b"old")
    version, generated = store.rotate(admin, "api")
    assert version == 2 and generated is not None and len(generated) >= 43
    assert store.get(admin, "api").value == generated
    version, generated = store.rotate(admin, "api", b"given")
    assert (version, generated) == (3, None)
    assert [v["origin"] for v in store.info("api").versions] == ["put", "generated", "rotate"]


def test_destroy_erases_the_value_and_keeps_metadata(vault: Vault, admin: Principal) -> None:
    store = SecretStore(vault)
    store.put(admin, "db", b"leaked")
    store.put(admin, "db", b"fresh")
    info = store.destroy(admin, "db", 1)
    assert info.versions[0]["state"] == "destroyed" and info.versions[0]["destroyed_at"] is not None
    assert _rows(vault, "db")[0].sealed is None
    with pytest.raises(RefusedError):
        store.get(admin, "db", 1)
    assert store.get(admin, "db").value == b"fresh"
    store.destroy(admin, "db", 2)
    with pytest.raises(RefusedError):  # the latest destroyed: no silent fallback to an older value
        store.get(admin, "db")
    with pytest.raises(NotFoundError):
        store.destroy(admin, "db", 9)
    with vault.engine.connect() as conn:
        ops = conn.execute(select(AuditEvent.op, AuditEvent.result).where(AuditEvent.key == "secret:db")).all()
    assert ("secret.destroy", "ok") in [tuple(o) for o in ops]
    assert ("secret.read", "denied") in [tuple(o) for o in ops]


def test_destroy_needs_a_second_factor_where_required(vault: Vault, admin: Principal) -> None:
    store = SecretStore(vault)
    store.put(admin, "db", b"v")
    operator = _client(vault, admin, "ops", "admin", [])
    vault.mfa_required = True
    with pytest.raises(RefusedError):
        store.destroy(operator, "db", 1)
    assert store.get(admin, "db").value == b"v"


def test_swapped_sealed_rows_fail_integrity(vault: Vault, admin: Principal) -> None:
    store = SecretStore(vault)
    store.put(admin, "a", b"value-of-a")
    store.put(admin, "a", b"value-of-a-2")
    store.put(admin, "b", b"value-of-b")
    rows = {(r.name, r.version): r.sealed for r in _rows(vault, "a") + _rows(vault, "b")}
    with vault.engine.begin() as conn:
        conn.execute(
            update(SecretVersionRow)
            .where(SecretVersionRow.name == "a", SecretVersionRow.version == 1)
            .values(sealed=rows[("b", 1)])
        )
        conn.execute(
            update(SecretVersionRow).where(SecretVersionRow.name == "b").values(sealed=rows[("a", 1)])
        )
        conn.execute(
            update(SecretVersionRow)
            .where(SecretVersionRow.name == "a", SecretVersionRow.version == 2)
            .values(sealed=rows[("a", 1)])
        )
    for name, version in (("a", 1), ("b", None), ("a", 2)):
        with pytest.raises(IntegrityError) as caught:
            store.get(admin, name, version)
        assert caught.value.exit_code == 5
        assert "value-of" not in str(caught.value)
    with vault.engine.connect() as conn:
        results = conn.execute(
            select(AuditEvent.result).where(AuditEvent.op == "secret.read", AuditEvent.key == "secret:a")
        ).scalars()
        assert list(results) == ["error", "error"]


def test_grants_are_per_secret(vault: Vault, admin: Principal) -> None:
    store = SecretStore(vault)
    store.put(admin, "billing-db", b"pw1")
    store.put(admin, "billing-api", b"pw2")
    store.put(admin, "hr-db", b"pw3")
    billing = _client(vault, admin, "billing", "service", ["secret:billing-*:read"])
    everything_key = _client(vault, admin, "keys", "service", ["*:*"])
    writer = _client(vault, admin, "writer", "service", ["secret:hr-db:write"])
    auditor = _client(vault, admin, "aud", "auditor", [])
    operator = _client(vault, admin, "op", "operator", [])
    assert store.get(billing, "billing-db").value == b"pw1"
    assert store.get(billing, "billing-api").value == b"pw2"
    with pytest.raises(PermissionDeniedError):
        store.get(billing, "hr-db")
    with pytest.raises(PermissionDeniedError):
        store.put(billing, "billing-db", b"new")
    with pytest.raises(PermissionDeniedError):  # a grant on every key is not a grant on secrets
        store.get(everything_key, "billing-db")
    assert store.put(writer, "hr-db", b"rotated") == 2
    with pytest.raises(PermissionDeniedError):
        store.get(writer, "hr-db")
    with pytest.raises(PermissionDeniedError):
        store.get(auditor, "hr-db")
    assert [i.name for i in store.list(auditor)] == ["billing-api", "billing-db", "hr-db"]
    assert [i.name for i in store.list(billing)] == ["billing-api", "billing-db"]
    with pytest.raises(PermissionDeniedError):
        store.list(everything_key)
    assert store.get(operator, "hr-db").value == b"rotated"
    with pytest.raises(PermissionDeniedError):
        store.destroy(operator, "hr-db", 1)
    with pytest.raises(UsageError):
        parse_grants(["secret:db:decrypt"])
    assert ClientService(vault).get("billing").grants == ["secret:billing-*:read"]


def test_readers_since_lists_who_read(vault_factory) -> None:  # type: ignore[no-untyped-def]
    from keyguard.vault.principal import local_admin

    clock = FrozenClock(datetime(2026, 11, 1, 9, 0, tzinfo=UTC))
    vault = vault_factory(clock)
    admin = local_admin()
    store = SecretStore(vault)
    store.put(admin, "db", b"v1")
    early = _client(vault, admin, "early", "service", ["secret:db:read"])
    late = _client(vault, admin, "late", "service", ["secret:db:read"])
    outsider = _client(vault, admin, "outsider", "service", [])
    store.get(early, "db")
    clock.advance(timedelta(hours=2))
    leaked_at = clock.now()
    clock.advance(timedelta(minutes=5))
    store.put(admin, "db", b"v2")
    store.get(late, "db")
    store.get(late, "db", 1)
    with pytest.raises(PermissionDeniedError):
        store.get(outsider, "db")
    everyone = readers_since(vault.engine, "db")
    assert [r.actor for r in everyone] == ["early", "late"]
    since = readers_since(vault.engine, "db", leaked_at)
    assert [r.to_dict()["actor"] for r in since] == ["late"]
    assert since[0].reads == 2 and since[0].versions == [1, 2] and since[0].source_ips == ["10.1.2.3"]
    assert readers_since(vault.engine, "other") == []
    assert verify_log(vault.engine, vault.checkpoint_key)["events"] > 5


def test_secrets_survive_a_root_rotation(vault: Vault, admin: Principal, tmp_path: Path) -> None:
    from keyguard.vault.rootrotate import rotate_root
    from keyguard.vault.roots import KeyFileRoot

    store = SecretStore(vault)
    store.put(admin, "db", b"kept across roots")
    new_key = tmp_path / "new-root.key"
    rotate_root(vault.engine, lambda: KeyFileRoot.create(new_key), env={})
    reopened = Vault.open(vault.engine, KeyFileRoot(new_key))
    try:
        assert SecretStore(reopened).get(admin, "db").value == b"kept across roots"
    finally:
        reopened.close()


def test_rollout_writes_a_new_secret_version(vault: Vault, admin: Principal) -> None:
    from keyguard.response import rollout

    vault.create_key(admin, "pay", "encrypt")
    store = SecretStore(vault)
    store.put(admin, "billing-config", b"PAY_KEY=pay@1\nOTHER=x@1\n")
    vault.rotate(admin, "pay")
    now = vault.clock.now()
    preview = rollout.update_target(vault, admin, "secret:billing-config", "pay", 2, now, dry_run=True)
    assert "would be replaced" in preview and "PAY_KEY" not in preview
    assert store.get(admin, "billing-config").version == 1
    summary = rollout.update_target(vault, admin, "secret:billing-config", "pay", 2, now)
    assert "version 1 -> 2" in summary and "PAY_KEY" not in summary
    latest = store.get(admin, "billing-config")
    assert (latest.version, latest.value) == (2, b"PAY_KEY=pay@2\nOTHER=x@1\n")
    assert rollout.update_target(vault, admin, "secret:billing-config", "pay", 2, now) == ""
    assert store.info("billing-config").versions[-1]["origin"] == "rollout"
