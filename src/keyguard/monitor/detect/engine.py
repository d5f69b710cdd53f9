"""The detection engine: pure, streaming, and snapshot-able.

``process(event)`` runs every enabled rule on one event and returns
:class:`AlertUpdate` values: a new alert, or one more occurrence of an alert of
the same rule, key and discriminator seen within the rule's group window (one
alert for a 10-minute burst, with a count). ``process_columns(columns)`` does the
same for a batch held as :class:`EventColumns`, one detector at a time over the
whole batch, and returns the updates merged per group. It does no I/O;
``snapshot()`` and ``restore()`` carry its state across ``watch`` restarts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import groupby
from operator import itemgetter
from typing import Any

from keyguard.monitor.detect.columns import EventColumns, IndexedColumns
from keyguard.monitor.detect.detectors import DETECTORS, BadVersion, Detector, OffHours, Signal
from keyguard.monitor.detect.rules import TIERS, RuleSpec
from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.timeutil import ts_epoch

SNAPSHOT_VERSION = 1
#: The columns detectors read at every refused or failed call (``bad_version``, ``denied_burst``).
REFUSED_READS = ("key", "result", "actor", "version", "op", "reason", "epoch")


@dataclass(slots=True)
class AlertUpdate:
    """One firing of a rule, already grouped: ``is_new`` or one more of ``group_key``."""

    rule: str
    severity: str
    key: str | None
    group_key: str
    title: str
    details: dict[str, Any]
    ts: str
    is_new: bool
    count: int = 1
    first_ts: str = ""  # the first firing merged into this update (``ts`` is the last)
    event: dict[str, Any] = field(default_factory=dict)


@lru_cache(maxsize=65_536)
def group_key_of(rule: str, key: str | None, discriminator: str) -> str:
    """Stable identity of an alert group (rule, key, discriminator)."""
    text = f"{rule}\x1f{key or ''}\x1f{discriminator}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _update(
    rule: RuleSpec, key: str | None, gkey: str, signal: Signal, ts: str, is_new: bool, record: dict[str, Any]
) -> AlertUpdate:
    return AlertUpdate(
        rule=rule.id,
        severity=rule.severity,
        key=key,
        group_key=gkey,
        title=signal.title,
        details=signal.details,
        ts=ts,
        is_new=is_new,
        first_ts=ts,
        event=record,
    )


class DetectionEngine:
    """Runs rules over an event stream; knows key tiers and blocked versions."""

    max_groups = 50_000  # more alert groups than this: forget those older than every group window

    def __init__(
        self,
        rules: Iterable[RuleSpec],
        *,
        tiers: Mapping[str, str] | None = None,
        compromised: Mapping[str, Iterable[int] | Mapping[int, float]] | None = None,
        owners: Mapping[str, str] | None = None,
    ) -> None:
        self.rules = [r for r in rules if r.enabled]
        self.tiers: dict[str, str] = dict(tiers or {})
        self._detectors: list[tuple[RuleSpec, Detector, dict[str, Any]]] = []
        for rule in self.rules:
            params = {tier: rule.params_for(tier) for tier in TIERS}
            self._detectors.append((rule, DETECTORS[rule.kind](), params))
        self.groups: dict[str, float] = {}  # group_key -> last epoch
        self.set_compromised(compromised or {})
        self.set_owners(owners or {})
        self.processed = 0

    def set_compromised(self, compromised: Mapping[str, Iterable[int] | Mapping[int, float]]) -> None:
        """Tell the engine which versions are blocked (compromised / disabled / destroyed).

        Per key either the versions (blocked at every time) or ``{version: since}``, the
        epoch from which the version is blocked: an event is judged by the state at its time.
        """
        blocked = BadVersion.blocked_since(compromised)
        for _, detector, _ in self._detectors:
            if isinstance(detector, BadVersion):
                detector.compromised = blocked

    def set_owners(self, owners: Mapping[str, str]) -> None:
        """Tell the engine each key's owner (the off-hours rule's business hours are per owner)."""
        for _, detector, _ in self._detectors:
            if isinstance(detector, OffHours):
                detector.owners = dict(owners)

    def set_tiers(self, tiers: Mapping[str, str]) -> None:
        """Tell the engine each key's tier (unknown keys use ``default`` thresholds)."""
        self.tiers = dict(tiers)

    def process(self, ev: MonitorEvent) -> list[AlertUpdate]:
        """Run every rule on ``ev``; return the (grouped) alerts it raises."""
        self.processed += 1
        epoch = ts_epoch(ev.ts)
        tier = self._tier(ev.key)
        out: list[AlertUpdate] = []
        for rule, detector, params in self._detectors:
            signal = detector.observe(ev, epoch, params[tier])
            if signal is None:
                continue
            gkey, is_new = self._touch_group(rule, ev.key, signal.discriminator, epoch)
            out.append(_update(rule, ev.key, gkey, signal, ev.ts, is_new, ev.to_record()))
        if len(self.groups) > self.max_groups:
            self._prune(epoch)
        return out

    def process_many(self, events: Iterable[MonitorEvent]) -> list[AlertUpdate]:
        """Process events in order and return the alert updates, merged per group.

        A firing of a group that is not new is folded into the group's latest update
        of this batch (``count`` + 1, ``ts`` moved on).
        """
        return self.process_columns(EventColumns.from_events(events))

    def process_columns(self, cols: EventColumns) -> list[AlertUpdate]:
        """:meth:`process_many` over a batch held as columns.

        Returns the same updates and leaves the same state as :meth:`process` called on
        each event in turn with the updates merged per group: detectors share no state,
        so each runs over the whole batch, and their signals are then grouped in event
        order (and rule order within an event).
        """
        if not len(cols):
            return []
        batch = IndexedColumns.of(cols)
        if batch.not_ok:
            cols.prefetch(batch.not_ok, REFUSED_READS)  # the refused calls are read by more than one rule
        hits: list[tuple[int, int, Signal]] = []
        tier_of = {key: self._tier(key) for key in batch.by_key}
        tier_of[None] = "default"
        for position, (_, detector, params) in enumerate(self._detectors):
            params_of = {key: params[tier] for key, tier in tier_of.items()}
            hits.extend((i, position, signal) for i, signal in detector.observe_columns(batch, params_of))
        hits.sort(key=itemgetter(0, 1))
        self.processed += len(cols)
        return self._group(cols, hits)

    def _tier(self, key: str | None) -> str:
        return self.tiers.get(key, "default") if key is not None else "default"

    def _group(self, cols: EventColumns, hits: list[tuple[int, int, Signal]]) -> list[AlertUpdate]:
        """Turn the batch's signals (sorted by event, then rule) into updates merged per group."""
        merged: dict[str, AlertUpdate] = {}
        order: list[AlertUpdate] = []
        if hits:
            cols.prefetch(i for i, _, _ in hits)
        done = 0  # events before this one are fully processed
        for i, event_hits in groupby(hits, key=itemgetter(0)):
            self._prune_quiet(cols.epoch, done, i)
            key, epoch, ts = cols.key[i], cols.epoch[i], cols.ts[i]
            for _, position, signal in event_hits:
                rule = self._detectors[position][0]
                gkey, is_new = self._touch_group(rule, key, signal.discriminator, epoch)
                current = merged.get(gkey)
                if current is None or is_new:
                    merged[gkey] = _update(rule, key, gkey, signal, ts, is_new, cols.record(i))
                    order.append(merged[gkey])
                else:
                    current.count += 1
                    current.ts = ts
            if len(self.groups) > self.max_groups:
                self._prune(epoch)
            done = i + 1
        self._prune_quiet(cols.epoch, done, len(cols))
        return order

    def _touch_group(self, rule: RuleSpec, key: str | None, discriminator: str, epoch: float) -> tuple[str, bool]:
        """The group of a firing at ``epoch``, and whether it opens a new alert (none within the window)."""
        gkey = group_key_of(rule.id, key, discriminator)
        last = self.groups.get(gkey)
        self.groups[gkey] = epoch
        return gkey, last is None or epoch - last > rule.group_window_seconds

    def _prune_quiet(self, epochs: list[float], start: int, stop: int) -> None:
        """The prunes ``process`` does on events ``start:stop``, which raise no signal."""
        for i in range(start, stop):
            if len(self.groups) <= self.max_groups:
                return
            self._prune(epochs[i])

    def _prune(self, epoch: float) -> None:
        horizon = epoch - max((r.group_window_seconds for r in self.rules), default=600)
        self.groups = {k: v for k, v in self.groups.items() if v >= horizon}

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state of every detector and of the alert groups."""
        return {
            "version": SNAPSHOT_VERSION,
            "processed": self.processed,
            "groups": dict(self.groups),
            "rules": {rule.id: det.snapshot() for rule, det, _ in self._detectors},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load a snapshot made by :meth:`snapshot` (unknown rules are ignored)."""
        if state.get("version") != SNAPSHOT_VERSION:
            return
        self.processed = int(state.get("processed", 0))
        self.groups = {k: float(v) for k, v in state.get("groups", {}).items()}
        saved = state.get("rules", {})
        for rule, detector, _ in self._detectors:
            if rule.id in saved:
                detector.restore(saved[rule.id])


def example_alerts(rule: RuleSpec, example: Any) -> int:
    """How many new alerts of ``rule`` one of its example streams raises."""
    from keyguard.monitor.detect.rules import expand_stream

    engine = DetectionEngine([rule], tiers=example.tiers, compromised=example.compromised)
    return sum(1 for u in engine.process_many(expand_stream(example)) if u.is_new and u.rule == rule.id)


def verify_examples(rule: RuleSpec) -> list[str]:
    """Names of the rule's examples that do not behave as declared (empty when all pass)."""
    failures = []
    for example in rule.examples.positive:
        alerts = example_alerts(rule, example)
        expected = example.expect_alerts
        if (expected is not None and alerts != expected) or (expected is None and alerts < 1):
            failures.append(f"positive {example.name!r} raised {alerts}")
    for example in rule.examples.negative:
        alerts = example_alerts(rule, example)
        if alerts:
            failures.append(f"negative {example.name!r} raised {alerts}")
    return failures
