"""The engine: grouping with counts, and snapshot/restore equivalence."""

from __future__ import annotations

import json

from keyguard.monitor.detect import DetectionEngine, load_rules
from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.timeutil import epoch_ts


def _stream(n: int, start: float = 1_767_600_000.0) -> list[MonitorEvent]:
    events = []
    for i in range(n):
        events.append(
            MonitorEvent(
                ts=epoch_ts(start + i * 7),
                op="decrypt",
                result="denied" if i % 3 == 0 else "ok",
                key=f"k{i % 4}",
                version=1 + i % 2,
                actor=f"svc-{i % 5}",
                source_ip=f"203.{i % 7}.0.{i % 11}",
                user_agent=f"ua/{i % 6}",
                reason="permission denied" if i % 3 == 0 else None,
            )
        )
    return events


def test_burst_is_one_alert_with_a_count() -> None:
    rule = next(r for r in load_rules() if r.id == "denied-burst")
    engine = DetectionEngine([rule])
    events = [
        MonitorEvent(ts=epoch_ts(1_767_600_000 + i), op="decrypt", result="denied", key="pay") for i in range(100)
    ]
    updates = engine.process_many(events)
    assert len(updates) == 1
    assert updates[0].is_new and updates[0].count == 10


def test_snapshot_restore_gives_the_same_alerts() -> None:
    rules = load_rules()
    events = _stream(3000)
    whole = DetectionEngine(rules, compromised={"k1": [2]})
    expected = [(u.rule, u.group_key, u.is_new) for ev in events for u in whole.process(ev)]

    first = DetectionEngine(rules, compromised={"k1": [2]})
    got = [(u.rule, u.group_key, u.is_new) for ev in events[:1700] for u in first.process(ev)]
    snapshot = json.loads(json.dumps(first.snapshot()))
    second = DetectionEngine(rules, compromised={"k1": [2]})
    second.restore(snapshot)
    got += [(u.rule, u.group_key, u.is_new) for ev in events[1700:] for u in second.process(ev)]
    assert got == expected
    assert any(rule == "compromised-version-use" for rule, _, _ in expected)


def test_network_of() -> None:
    from keyguard.monitor.detect.detectors.two_networks import network_of

    assert network_of("203.0.113.5", True) == "203.0"
    assert network_of("10.1.2.3", True) is None and network_of("10.1.2.3", False) == "10.1"
    assert network_of("kms.amazonaws.com", False) is None
    assert network_of("AWS Internal", False) is None
    assert network_of("::ffff:198.51.100.1", True) == "198.51"
    assert network_of("2001:db8:1:2::1", True) == "2001:db8:1"


def test_grouped_update_keeps_first_and_last_time() -> None:
    rule = next(r for r in load_rules() if r.id == "compromised-version-use")
    engine = DetectionEngine([rule], compromised={"pay": [1]})
    events = [
        MonitorEvent(ts=epoch_ts(1_767_600_000 + i), op="decrypt", result="ok", key="pay", version=1) for i in range(5)
    ]
    (update,) = engine.process_many(events)
    assert update.count == 5
    assert (update.first_ts or update.ts) == events[0].ts and update.ts == events[-1].ts
