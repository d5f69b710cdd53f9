"""Scheduled rotation: due keys rotate once (even when schedulers race), data re-wrapped, failures alert."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from keyguard.audit.reading import iter_events
from keyguard.errors import KeyguardError
from keyguard.monitor.alerts import list_alerts
from keyguard.policy.schedule import next_rotations
from keyguard.response.scheduler.rotation import ALERT_RULE, SCHEDULER, ScheduledRotations
from keyguard.store.lease_tables import ScheduledRotation
from keyguard.store.tables import Key
from tests.data.test_inventory import _all_decrypt, _seed

ITEMS = 30


def make_due(vault, name: str, days: int = 91) -> None:  # type: ignore[no-untyped-def]
    """Pretend ``name`` was last rotated ``days`` ago."""
    with vault.engine.begin() as conn:
        conn.execute(update(Key).where(Key.name == name).values(rotated_at=vault.clock.now() - timedelta(days=days)))
    vault._invalidate()


def rotations_by_scheduler(vault) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    return [e for e in iter_events(vault.engine) if e["op"] == "key.rotate" and e["actor"] == "keyguard:scheduler"]


def test_a_due_key_rotates_once_and_its_data_is_rewrapped(vault, admin) -> None:  # type: ignore[no-untyped-def]
    vault.create_key(admin, "k", "encrypt")
    vault.create_key(admin, "fresh", "encrypt")
    _seed(vault, ITEMS)
    make_due(vault, "k")
    report = ScheduledRotations(vault, batch=7).run()
    assert report.rotated == [("k", 2)] and report.rewrapped == {"k": ITEMS} and not report.failed
    assert vault.key_info("k").latest == 2 and vault.key_info("fresh").latest == 1
    assert _all_decrypt(vault, admin, ITEMS) == {2}
    assert ScheduledRotations(vault).run().rotated == []  # no longer due
    assert [e["version"] for e in rotations_by_scheduler(vault)] == [2]
    with vault.engine.connect() as conn:
        [run] = conn.execute(select(ScheduledRotation)).all()
    assert (run.status, run.from_version, run.to_version) == ("done", 1, 2)
    due = {r["key"]: r for r in next_rotations(vault.engine, vault.clock.now())}
    assert due["k"]["overdue"] is False and due["k"]["last_scheduled"]["status"] == "done"
    assert due["k"]["next_due"] > due["fresh"]["next_due"]


def test_two_schedulers_racing_on_one_database_rotate_once(vault_factory, admin) -> None:  # type: ignore[no-untyped-def]
    first = vault_factory()
    first.create_key(admin, "k", "encrypt")
    make_due(first, "k")
    second = vault_factory()
    barrier = threading.Barrier(2)
    reports = []

    def go(v) -> None:  # type: ignore[no-untyped-def]
        barrier.wait()
        reports.append(ScheduledRotations(v).run())

    threads = [threading.Thread(target=go, args=(v,)) for v in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r.rotated) for r in reports) == [0, 1]
    first._invalidate()
    assert first.key_info("k").latest == 2
    assert len(rotations_by_scheduler(first)) == 1


def test_a_failed_rotation_alerts_and_is_retried_later(vault, admin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    vault.create_key(admin, "k", "encrypt")
    make_due(vault, "k")
    real = vault.rotate

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyguardError("the HSM is unreachable")

    monkeypatch.setattr(vault, "rotate", broken)
    scheduler = ScheduledRotations(vault, retry_after=timedelta(0))
    assert scheduler.run().failed == {"k": "the HSM is unreachable"}
    [alert] = list_alerts(vault.engine)
    assert (alert["rule"], alert["key"], alert["severity"]) == (ALERT_RULE, "k", "high")
    due = {r["key"]: r for r in next_rotations(vault.engine, vault.clock.now())}
    assert due["k"]["overdue"] and due["k"]["last_scheduled"]["status"] == "failed"
    assert due["k"]["last_scheduled"]["error"] == "the HSM is unreachable"
    scheduler.run()  # fails again: the same alert counts it
    [alert] = list_alerts(vault.engine)
    assert alert["count"] == 2
    monkeypatch.setattr(vault, "rotate", real)
    assert scheduler.run().rotated == [("k", 2)]
    assert vault.key_info("k").latest == 2


@pytest.mark.parametrize("rotated_before_crash", [False, True])
def test_a_claim_left_by_a_dead_node_is_finished_once(vault, admin, rotated_before_crash: bool) -> None:  # type: ignore[no-untyped-def]
    vault.create_key(admin, "k", "encrypt")
    _seed(vault, ITEMS)
    make_due(vault, "k")
    dead = ScheduledRotations(vault, node="dead-node")
    with vault.engine.connect() as conn:
        name, rotated_at, days = conn.execute(select(Key.name, Key.rotated_at, Key.rotation_days)).one()
    run_id = dead._claim(name, rotated_at, days, vault.clock.now())
    assert run_id is not None
    if rotated_before_crash:
        vault.rotate(SCHEDULER, "k")  # the node died after rotating, before recording it
    alive = ScheduledRotations(vault, node="alive", claim_grace=timedelta(minutes=5))
    assert alive.run().rotated == []  # a fresh claim of another node is left alone
    alive.claim_grace = timedelta(0)
    alive.run()
    assert vault.key_info("k").latest == 2, "exactly one new version"
    assert _all_decrypt(vault, admin, ITEMS) == {2}
    with vault.engine.connect() as conn:
        assert conn.execute(select(ScheduledRotation.status)).scalars().all() == ["done"]


def test_an_interrupted_rewrap_goes_on_at_the_next_pass(vault, admin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from keyguard.data.inventory import DataInventory

    vault.create_key(admin, "k", "encrypt")
    _seed(vault, ITEMS)
    make_due(vault, "k")
    real = DataInventory.rewrap

    def stops(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyguardError("database went away")

    monkeypatch.setattr(DataInventory, "rewrap", stops)
    scheduler = ScheduledRotations(vault)
    assert scheduler.run().rotated == [("k", 2)]
    with vault.engine.connect() as conn:
        run = conn.execute(select(ScheduledRotation)).one()
    assert (run.status, run.error) == ("rewrapping", "rewrap: database went away")
    monkeypatch.setattr(DataInventory, "rewrap", real)
    report = scheduler.run()
    assert report.rotated == [] and report.rewrapped == {"k": ITEMS}
    assert vault.key_info("k").latest == 2 and _all_decrypt(vault, admin, ITEMS) == {2}
    with vault.engine.connect() as conn:
        assert conn.execute(select(ScheduledRotation.status)).scalars().all() == ["done"]
