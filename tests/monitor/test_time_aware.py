"""Issue 13 point 1: an event is judged by the state of its version at the event's own time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from keyguard.clock import FrozenClock
from keyguard.monitor.detect import DetectionEngine, load_rules
from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.timeutil import epoch_ts
from keyguard.monitor.watch import Watcher
from keyguard.store.monitor_tables import Alert

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _rule() -> object:
    return next(r for r in load_rules() if r.id == "compromised-version-use")


def test_engine_judges_by_the_state_at_the_event_time() -> None:
    since = T0.timestamp()
    engine = DetectionEngine([_rule()], compromised={"pay": {1: since}})  # type: ignore[list-item]
    before = [
        MonitorEvent(ts=epoch_ts(since - 3600 + i * 60), op="decrypt", result="ok", key="pay", version=1)
        for i in range(30)
    ]
    assert engine.process_many(before) == []
    after = [MonitorEvent(ts=epoch_ts(since + 60), op="decrypt", result="ok", key="pay", version=1)]
    updates = engine.process_many(after)
    assert [u.rule for u in updates if u.is_new] == ["compromised-version-use"]


def test_watch_after_a_compromise_does_not_flag_earlier_legitimate_use(vault_factory, admin) -> None:  # type: ignore[no-untyped-def]
    clock = FrozenClock(T0)
    vault = vault_factory(clock)
    vault.create_key(admin, "pay", "encrypt", "aes256-gcm", "high")
    for _ in range(5):  # legitimate use before the leak
        clock.advance(timedelta(minutes=1))
        vault.encrypt(admin, "pay", b"order")
    clock.advance(timedelta(minutes=5))
    vault.set_state(admin, "pay", 1, "compromised", "leaked")
    clock.advance(timedelta(minutes=1))
    watcher = Watcher(vault.engine)
    watcher.run_once()
    with vault.engine.connect() as conn:
        hits = conn.execute(
            select(func.count()).select_from(Alert).where(Alert.rule == "compromised-version-use")
        ).scalar_one()
    assert hits == 0
