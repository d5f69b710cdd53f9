"""Batch detection: ``process_columns`` must equal ``process`` event by event, in updates and state."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyguard.monitor.detect import AlertUpdate, DetectionEngine, RuleSpec, load_rules
from keyguard.monitor.detect.columns import EventColumns
from keyguard.monitor.detect.detectors.rate_spike import _record_minute, _replay
from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.timeutil import epoch_ts, ts_epoch

START = 1_767_600_000.0
KEYS = ["k1", "k2", "k3", None]

# Tight variants of every rule kind, with per-tier differences, so that short streams fire.
TIGHT: dict[str, list[tuple[dict[str, Any], dict[str, dict[str, Any]]]]] = {
    "new_value": [
        (
            {"field": field, "learn_events": 3, "learn_seconds": 60, "max_values": 3},
            {"high": {"learn_events": 0, "learn_seconds": 0}, "low": {"max_values": 1}},
        )
        for field in ("source_ip", "user_agent", "actor")
    ],
    "rate_spike": [
        (
            {"min_per_minute": 3, "min_samples": 3, "history": 10, "k": 1, "factor": 1},
            {
                "low": {"hard_limit": 2, "min_per_minute": 4, "min_samples": 50},
                "high": {"history": 12, "min_per_minute": 2},
            },
        ),
    ],
    "bad_version": [({"versions": {"k1": [3]}}, {"high": {"reason_pattern": "denied|compromised"}})],
    "denied_burst": [
        (
            {"threshold": 3, "window_seconds": 120, "results": ["denied", "error"]},
            {"high": {"threshold": 2, "results": ["denied"]}},
        ),
    ],
    "off_hours": [
        (
            {"learn_events": 5, "learn_seconds": 600, "min_share": 0.2},
            {"high": {"hours": [8, 18]}, "low": {"hours": [22, 6]}},
        ),
    ],
    "two_networks": [({"window_seconds": 600}, {"high": {"ignore_private": False}})],
}


def _rules() -> list[RuleSpec]:
    builtin = load_rules()
    tight = []
    for rule in builtin:
        for n, (params, thresholds) in enumerate(TIGHT[rule.kind]):
            if rule.kind == "new_value" and params["field"] != rule.params["field"]:
                continue
            data = rule.model_dump()
            data.update(id=f"t{n}-{rule.id}", params=params, thresholds=thresholds, group_window_seconds=120)
            tight.append(RuleSpec.model_validate(data))
    return builtin + tight


RULES = _rules()

OUTCOMES = [
    ("ok", None),
    ("ok", None),
    ("ok", None),
    ("denied", "permission denied"),
    ("denied", "version 2 is compromised"),
    ("error", "key is DISABLED"),
    ("error", "backend timeout"),
    ("denied", None),
]
FIELDS = {
    "key": st.sampled_from(KEYS),
    "source_ip": st.sampled_from(
        [
            "10.0.0.1",
            "10.0.0.2",
            "203.0.113.5",
            "198.51.100.7",
            "172.16.4.4",
            "2001:db8:1:2::1",
            "2001:DB8:9::5",
            "fd00::1",
            "::ffff:198.51.100.1",
            "AWS Internal",
            "",
            None,
        ]
    ),
    "user_agent": st.sampled_from(["app/1.0", "curl/8.5", "sdk/2", "", None]),
    "actor": st.sampled_from(["svc-a", "svc-b", "svc-c", ""]),
    "version": st.sampled_from([1, 2, 3, None]),
    "outcome": st.sampled_from(OUTCOMES),
    "op": st.sampled_from(["decrypt", "encrypt"]),
}
GAPS = st.one_of(
    st.just(0.0),
    st.integers(0, 5).map(float),
    st.integers(0, 120).map(float),
    st.integers(100, 4000).map(float),
    st.integers(3600, 3 * 86400).map(float),
    st.integers(-90, 0).map(float),  # slightly out of order, as real logs are
    st.integers(0, 10**7).map(lambda us: us / 1e6),
)
BLOCKS = st.tuples(
    st.fixed_dictionaries(FIELDS), st.integers(1, 25), st.sampled_from([0.0, 0.5, 1.0, 2.0, 13.0, 61.0]), GAPS
)


def _events(blocks: list[tuple[dict[str, Any], int, float, float]]) -> list[MonitorEvent]:
    now, events = START, []
    for fields, repeat, every, gap in blocks:
        now += gap
        result, reason = fields["outcome"]
        for _ in range(repeat):
            events.append(
                MonitorEvent(
                    ts=epoch_ts(now),
                    op=fields["op"],
                    result=result,
                    key=fields["key"],
                    version=fields["version"],
                    actor=fields["actor"],
                    source_ip=fields["source_ip"],
                    user_agent=fields["user_agent"],
                    reason=reason,
                    request_id=f"r{len(events)}",
                    source="test",
                    source_line=len(events) + 1,
                )
            )
            now += every
    return events


def _merged(engine: DetectionEngine, events: list[MonitorEvent]) -> list[AlertUpdate]:
    """What ``process_many`` returned before it had a batch implementation."""
    merged: dict[str, AlertUpdate] = {}
    order: list[AlertUpdate] = []
    for ev in events:
        for update in engine.process(ev):
            current = merged.get(update.group_key)
            if current is None or update.is_new:
                merged[update.group_key] = update
                order.append(update)
            else:
                current.count += 1
                current.ts = update.ts
    return order


def _state(engine: DetectionEngine) -> tuple[str, list[Any]]:
    """Snapshot text (dict order included) and every detector's live state (caches included)."""
    live = [getattr(detector, "keys", None) for _, detector, _ in engine._detectors]
    return json.dumps(engine.snapshot()), live


tiers_st = st.dictionaries(st.sampled_from(["k1", "k2", "k3"]), st.sampled_from(["default", "low", "medium", "high"]))


@settings(max_examples=400, deadline=None)
@given(
    blocks=st.lists(BLOCKS, min_size=1, max_size=30),
    tiers=tiers_st,
    later_tiers=st.none() | tiers_st,
    compromised=st.dictionaries(st.sampled_from(["k1", "k2"]), st.lists(st.sampled_from([1, 2]), max_size=2)),
    cuts=st.lists(st.floats(0, 1), max_size=4),
    max_groups=st.sampled_from([50_000, 2, 5]),
)
def test_columns_equal_event_by_event(
    blocks: list[tuple[dict[str, Any], int, float, float]],
    tiers: dict[str, str],
    later_tiers: dict[str, str] | None,
    compromised: dict[str, list[int]],
    cuts: list[float],
    max_groups: int,
) -> None:
    events = _events(blocks)
    points = sorted({int(c * len(events)) for c in cuts} | {0, len(events)})
    engines = [DetectionEngine(RULES, tiers=tiers, compromised=compromised) for _ in range(2)]
    for engine in engines:
        engine.max_groups = max_groups
    one_by_one, batched = engines
    for n, (lo, hi) in enumerate(zip(points, points[1:], strict=False)):
        if n == 1 and later_tiers is not None:  # tier changes between batches (cached thresholds stay)
            for engine in engines:
                engine.set_tiers(later_tiers)
        expected = _merged(one_by_one, events[lo:hi])
        got = batched.process_columns(EventColumns.from_events(events[lo:hi]))
        assert got == expected
        assert _state(batched) == _state(one_by_one)


def test_process_many_is_process_columns_on_a_long_stream() -> None:
    rng = random.Random(3)
    now, events = START, []
    for i in range(20_000):
        now += rng.choice([0, 0, 1, 5, 30, 200, 900])
        key = rng.choice(["a", "b", "c", "d", None])
        events.append(
            MonitorEvent(
                ts=epoch_ts(now),
                op="decrypt",
                result="denied" if rng.random() < 0.05 else "ok",
                key=key,
                version=rng.choice([1, 2]),
                actor=f"svc-{rng.randrange(6)}",
                source_ip=rng.choice(["10.0.0.1", "203.0.113.9", "198.51.100.4", "AWS Internal"]),
                user_agent=f"ua/{rng.randrange(4)}",
                source_line=i + 1,
            )
        )
    whole = DetectionEngine(RULES, tiers={"a": "high", "b": "low"}, compromised={"c": [2]})
    expected = _merged(whole, events)
    batched = DetectionEngine(RULES, tiers={"a": "high", "b": "low"}, compromised={"c": [2]})
    assert batched.process_many(events) == expected
    assert _state(batched) == _state(whole)
    assert any(u.rule == "t0-rate-spike" for u in expected)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(1, 3000), st.integers(0, 9)), min_size=1, max_size=60),
    tail=st.integers(1, 3000),
    keep=st.integers(10, 130),
    hours=st.lists(st.integers(0, 23), unique=True, max_size=24),
)
def test_replay_equals_closing_each_minute(
    steps: list[tuple[int, int]], tail: int, keep: int, hours: list[int]
) -> None:
    minutes, counts, minute = [], [], 29_461_000
    for gap, count in steps:
        minutes.append(minute)
        counts.append(count)
        minute += gap
    end = minute + tail - 1
    expected: dict[int, list[int]] = {h: [7] * (h % 3) for h in hours}
    got = json.loads(json.dumps(expected))
    got = {int(h): b for h, b in got.items()}
    cache_expected = dict.fromkeys(range(24), 1.0)
    cache_got = dict(cache_expected)
    for j, m in enumerate(minutes):
        _record_minute(expected, cache_expected, m, counts[j], minutes[j + 1] if j + 1 < len(minutes) else end, keep)
    _replay(got, cache_got, minutes, counts, end, keep)
    assert list(got.items()) == list(expected.items())
    assert cache_got == cache_expected


def test_columns_round_trip_and_epoch() -> None:
    events = _events(
        [
            (
                {
                    "key": k,
                    "source_ip": "1.2.3.4",
                    "user_agent": None,
                    "actor": "a",
                    "version": 2,
                    "outcome": ("denied", "x"),
                    "op": "sign",
                },
                3,
                0.25,
                1.0,
            )
            for k in KEYS
        ]
    )
    events[0].source_file = "f.json"
    events.append(MonitorEvent(ts="2026-01-05T10:00:59.999999Z", op="decrypt", result="ok"))
    cols = EventColumns.from_events(iter(events))
    assert len(cols) == len(events)
    for i, ev in enumerate(events):
        assert cols.record(i) == ev.to_record()
        assert cols.event(i) == ev
        assert cols.epoch[i] == ts_epoch(ev.ts)
    with pytest.raises(ValueError, match="column op"):
        EventColumns(**{**{f: getattr(cols, f) for f in cols.__dataclass_fields__}, "op": []})
    assert DetectionEngine(RULES).process_columns(EventColumns.from_events([])) == []


def _batched(events: list[MonitorEvent], points: list[int], tiers: dict[str, str], arrays: bool, **kw: Any) -> Any:
    """Updates and final state of ``process_columns`` over ``events`` cut at ``points``."""
    from keyguard.monitor.detect import columns

    engine = DetectionEngine(RULES, tiers=tiers, **kw)
    saved = columns.VECTORISED
    columns.VECTORISED = arrays
    try:
        updates = [engine.process_columns(_coded(events[lo:hi])) for lo, hi in zip(points, points[1:], strict=False)]
    finally:
        columns.VECTORISED = saved
    return updates, _state(engine)


def _coded(events: list[MonitorEvent]) -> EventColumns:
    """Columns with the string columns dictionary-coded as a batch reader gives them (codes in reverse order)."""
    import numpy as np

    cols = EventColumns.from_events(events)
    for name in ("key", "result", "actor", "source_ip", "user_agent"):
        values = getattr(cols, name)
        dictionary = list(reversed(list(dict.fromkeys(values))))
        code = {v: n for n, v in enumerate(dictionary)}
        cols.coded[name] = (np.asarray([code[v] for v in values], dtype=np.int64), dictionary)
    return cols


@settings(max_examples=300, deadline=None)
@given(
    blocks=st.lists(BLOCKS, min_size=1, max_size=30),
    tiers=tiers_st,
    compromised=st.dictionaries(st.sampled_from(["k1", "k2"]), st.lists(st.sampled_from([1, 2]), max_size=2)),
    cuts=st.lists(st.floats(0, 1), max_size=4),
)
def test_array_passes_equal_the_loops(
    blocks: list[tuple[dict[str, Any], int, float, float]],
    tiers: dict[str, str],
    compromised: dict[str, list[int]],
    cuts: list[float],
) -> None:
    """The detectors' numpy passes give the alerts and state of the per-event loops they replace."""
    events = _events(blocks)
    points = sorted({int(c * len(events)) for c in cuts} | {0, len(events)})
    arrays = _batched(events, points, tiers, True, compromised=compromised)
    loops = _batched(events, points, tiers, False, compromised=compromised)
    assert arrays == loops


def test_array_passes_equal_the_loops_on_a_long_stream() -> None:
    rng = random.Random(11)
    now, events = START, []
    for i in range(30_000):
        now += rng.choice([0, 0, 0, 1, 2, 30, 300, 4000])
        events.append(
            MonitorEvent(
                ts=epoch_ts(now),
                op="decrypt",
                result="denied" if rng.random() < 0.02 else "ok",
                key=rng.choice(["a", "b", "c", None]),
                actor=f"svc-{rng.randrange(3)}",
                source_ip=rng.choice(["10.0.0.1", "203.0.113.9", "203.0.113.10", "198.51.100.4"]),
                user_agent=f"ua/{rng.randrange(3)}",
                source_line=i + 1,
            )
        )
    points = [0, 7_000, 7_001, 19_000, 30_000]
    arrays = _batched(events, points, {"a": "high"}, True)
    assert arrays == _batched(events, points, {"a": "high"}, False)
    assert {u.rule for batch in arrays[0] for u in batch} >= {"t0-rate-spike", "new-source-ip", "two-networks"}
