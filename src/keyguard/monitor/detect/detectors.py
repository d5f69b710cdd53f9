"""One small detector class per rule kind; each keeps bounded per-key state.

A detector sees every event (in time order) through :meth:`observe` and returns a
:class:`Signal` when the rule fires. :meth:`observe_columns` does the same for a
whole batch of events held as columns, in one loop per key, and must leave the
same state and return the same signals as ``observe`` called on each event in turn
(detectors share no state, so each can run over the batch on its own). State is
plain JSON-able data so that the engine can snapshot it for ``watch`` restarts.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from keyguard.monitor.detect.columns import EventColumns, IndexedColumns
from keyguard.monitor.detect.rules import (
    BadVersionParams,
    DeniedBurstParams,
    NewValueParams,
    OffHoursParams,
    RateSpikeParams,
    TwoNetworksParams,
)
from keyguard.monitor.event import MonitorEvent


@dataclass(slots=True, frozen=True)
class Signal:
    """The rule fired: ``discriminator`` separates alerts of one rule and key."""

    discriminator: str
    title: str
    details: dict[str, Any]


Hits = list[tuple[int, Signal]]  # (event index in the batch, signal), in any order
ParamsOf = Mapping[str | None, Any]  # each key of the batch (and None) -> the parameters of its tier
Created = list[tuple[int, str, Any]]  # (index of the creating event, key, new state)


def _add_in_order(states: dict[str, Any], created: Created) -> None:
    """Add keys first seen in a batch in the order ``observe`` would have added them."""
    created.sort(key=lambda item: item[0])
    for _, key, state in created:
        states[key] = state


def _keyed(batch: IndexedColumns) -> Iterator[tuple[str, list[int]]]:
    """Each key of the batch with the indices of its events (keyless events left out)."""
    for key, indices in batch.by_key.items():
        if key is not None:
            yield key, indices


class Detector(Protocol):
    """What the engine needs of a detector."""

    def observe(self, ev: MonitorEvent, epoch: float, params: Any) -> Signal | None: ...

    def observe_columns(self, batch: IndexedColumns, params_of: ParamsOf) -> Hits: ...

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...


def _subject(ev: MonitorEvent) -> str:
    return ev.key if ev.key is not None else f"actor:{ev.actor}"


class NewValue:
    """New source IP / user agent / actor for a key once its baseline is learned."""

    def __init__(self) -> None:
        self.keys: dict[str, list[Any]] = {}  # key -> [first_epoch, count, set(values)]

    def observe(self, ev: MonitorEvent, epoch: float, params: NewValueParams) -> Signal | None:
        value = getattr(ev, params.field)
        if ev.key is None or not value:
            return None
        state = self.keys.get(ev.key)
        if state is None:
            self.keys[ev.key] = [epoch, 1, {value}]
            return None
        state[1] += 1
        seen: set[str] = state[2]
        if value in seen:
            return None
        learned = state[1] > params.learn_events and epoch - state[0] >= params.learn_seconds
        if len(seen) < params.max_values:
            seen.add(value)
        if not learned:
            return None
        return self._signal(ev.key, value, len(seen), params)

    def observe_columns(self, batch: IndexedColumns, params_of: ParamsOf) -> Hits:
        """``observe`` over a batch: one loop per key, counting and set membership inline."""
        hits: Hits = []
        created: Created = []
        for key, indices in _keyed(batch):
            params: NewValueParams = params_of[key]
            values: Sequence[str | None] = getattr(batch.cols, params.field)
            self._observe_key(key, indices, values, batch.cols.epoch, params, hits, created)
        _add_in_order(self.keys, created)
        return hits

    def _observe_key(
        self,
        key: str,
        indices: list[int],
        values: Sequence[str | None],
        epoch: list[float],
        params: NewValueParams,
        hits: Hits,
        created: Created,
    ) -> None:
        rest = iter(indices)
        state = self.keys.get(key)
        if state is None:
            for i in rest:
                value = values[i]
                if value:
                    state = [epoch[i], 1, {value}]
                    created.append((i, key, state))
                    break
            else:
                return
        first: float = state[0]
        count: int = state[1]
        seen: set[str] = state[2]
        learn_events, learn_seconds, max_values = params.learn_events, params.learn_seconds, params.max_values
        for i in rest:
            value = values[i]
            if not value:
                continue
            count += 1
            if value in seen:
                continue
            learned = count > learn_events and epoch[i] - first >= learn_seconds
            if len(seen) < max_values:
                seen.add(value)
            if learned:
                hits.append((i, self._signal(key, value, len(seen), params)))
        state[1] = count

    @staticmethod
    def _signal(key: str, value: str, seen: int, params: NewValueParams) -> Signal:
        label = params.field.replace("_", " ")
        return Signal(
            value[:200],
            f"new {label} {value[:80]} for key {key}",
            {params.field: value[:512], "known_values": seen - 1},
        )

    def snapshot(self) -> dict[str, Any]:
        return {k: [s[0], s[1], sorted(s[2])] for k, s in self.keys.items()}

    def restore(self, state: dict[str, Any]) -> None:
        self.keys = {k: [s[0], s[1], set(s[2])] for k, s in state.items()}


def _median(values: list[int]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return float(ordered[mid]) if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def _record_minute(
    buckets: dict[int, list[int]], cache: dict[int, float], minute: int, count: int, next_minute: int, keep: int
) -> None:
    """Record the closed minute's count, then zeros for the idle minutes before the next."""
    hour = (minute // 60) % 24
    bucket = buckets.setdefault(hour, [])
    bucket.append(count)
    cache.pop(hour, None)
    first, last = minute + 1, min(next_minute, minute + 1441)  # idle minutes [first, last)
    while first < last:
        hour_end = min((first // 60 + 1) * 60, last)
        idle_hour = (first // 60) % 24
        cache.pop(idle_hour, None)
        idle = buckets.setdefault(idle_hour, [])
        idle.extend([0] * min(hour_end - first, keep))
        if len(idle) > keep:
            del idle[:-keep]
        first = hour_end
    if len(bucket) > keep:
        del bucket[:-keep]


def _spans(minute: int, next_minute: int) -> Iterator[tuple[int, int]]:
    """(hour of day, entries) that :func:`_record_minute` adds, in its order."""
    yield (minute // 60) % 24, 1
    first, last = minute + 1, min(next_minute, minute + 1441)
    while first < last:
        hour_end = min((first // 60 + 1) * 60, last)
        yield (first // 60) % 24, hour_end - first
        first = hour_end


def _first_kept(minutes: list[int], next_minute: int, keep: int) -> int:
    """Index of the first closed minute whose entries can survive in the last ``keep`` of an hour.

    Walking back from the end, once every hour of day has ``keep`` newer entries the
    earlier closes cannot change any bucket's content.
    """
    if next_minute - minutes[0] < 24 * keep:  # fewer entries than 24 full buckets
        return 0
    missing = [keep] * 24
    short = 24
    after = next_minute
    for j in range(len(minutes) - 1, -1, -1):
        for hour, added in _spans(minutes[j], after):
            left = missing[hour]
            if left > 0:
                missing[hour] = left - added
                if left <= added:
                    short -= 1
        if not short:
            return j
        after = minutes[j]
    return 0


def _replay(
    buckets: dict[int, list[int]],
    cache: dict[int, float],
    minutes: list[int],
    counts: list[int],
    next_minute: int,
    keep: int,
) -> None:
    """:func:`_record_minute` for each closed minute in turn (each ends where the next begins).

    Closes whose entries would all be pushed out are skipped; they only add the hours
    they would have created first, so the buckets' order is kept too. The skipped ones
    would clear the threshold cache of hours the kept ones clear anyway (all 24).
    """
    if not minutes:
        return
    ends = [*minutes[1:], next_minute]
    if len(minutes) >= _VECTOR_FROM and next_minute - minutes[0] <= _VECTOR_SPAN:
        _record_many(buckets, cache, minutes, counts, ends, keep)  # every close, in arrays of at most the span
        return
    start = _first_kept(minutes, next_minute, keep)
    for j in range(start):
        if len(buckets) == 24:
            break
        for hour, _ in _spans(minutes[j], ends[j]):
            buckets.setdefault(hour, [])
    if len(minutes) - start < _VECTOR_FROM:
        for j in range(start, len(minutes)):
            _record_minute(buckets, cache, minutes[j], counts[j], ends[j], keep)
        return
    _record_many(buckets, cache, minutes[start:], counts[start:], ends[start:], keep)


#: From this many closed minutes on, :func:`_record_many` replays them with numpy, over
#: spans of at most this many minutes (the arrays' length; longer ones are trimmed first).
_VECTOR_FROM = 24
_VECTOR_SPAN = 4_000_000


def _record_many(
    buckets: dict[int, list[int]],
    cache: dict[int, float],
    minutes: list[int],
    counts: list[int],
    ends: list[int],
    keep: int,
) -> None:
    """:func:`_record_minute` for each closed minute in turn, in one pass of array arithmetic.

    Each close appends its count to its hour's bucket and a zero for every idle minute
    up to the next close (at most a day); a bucket keeps its last ``keep`` entries. So
    the whole replay is: lay out every appended minute in order, then give each hour of
    day its entries, in the order that hour first appears (which is the order
    :func:`_record_minute` would create missing buckets in).
    """
    start = np.asarray(minutes, dtype=np.int64)
    stop = np.minimum(np.asarray(ends, dtype=np.int64), start + 1441)
    lengths = stop - start
    offsets = np.cumsum(lengths) - lengths
    total = int(lengths.sum())
    laid = np.arange(total, dtype=np.int64) + np.repeat(start - offsets, lengths)
    values = np.zeros(total, dtype=np.int64)
    values[offsets] = counts
    hours = (laid // 60) % 24
    found, first = np.unique(hours, return_index=True)
    for hour in found[np.argsort(first)].tolist():
        bucket = buckets.setdefault(hour, [])
        cache.pop(hour, None)
        bucket.extend(values[hours == hour][-keep:].tolist())
        if len(bucket) > keep:
            del bucket[:-keep]


class _TimedPerKey:
    """``observe_columns`` for detectors that read only each key's event times."""

    def observe_columns(self, batch: IndexedColumns, params_of: ParamsOf) -> Hits:
        """``observe`` over a batch, one loop per key."""
        hits: Hits = []
        for key, indices in _keyed(batch):
            self._observe_key(key, indices, batch.cols.epoch, params_of[key], hits)
        return hits

    def _observe_key(self, key: str, indices: list[int], epoch: list[float], params: Any, hits: Hits) -> None:
        raise NotImplementedError


class RateSpike(_TimedPerKey):
    """Per-minute rate against the key's own history for the same hour of day (median/MAD).

    Over a batch, a minute's close is only noted; the hour buckets are brought up to
    date (:func:`_replay`) before a threshold is needed and at the end of the key.
    """

    def __init__(self) -> None:
        # key -> [minute, count, alerted_minute, {hour: [counts]}, {hour: threshold}]
        self.keys: dict[str, list[Any]] = {}

    def _close(self, state: list[Any], next_minute: int, params: RateSpikeParams) -> None:
        _record_minute(state[3], state[4], state[0], state[1], next_minute, params.history)

    def _threshold(self, state: list[Any], hour: int, params: RateSpikeParams) -> float | None:
        cached = state[4].get(hour)
        if cached is not None:
            return float(cached) if cached > 0 else None
        bucket = state[3].get(hour, [])
        if len(bucket) < params.min_samples:
            threshold = float(params.hard_limit) if params.hard_limit else -1.0
        else:
            median = _median(bucket)
            mad = _median([abs(v - median) for v in bucket]) * 1.4826
            threshold = max(
                float(params.min_per_minute),
                median * params.factor,
                median + params.k * max(mad, 1.0),
            )
        state[4][hour] = threshold
        return threshold if threshold > 0 else None

    def observe(self, ev: MonitorEvent, epoch: float, params: RateSpikeParams) -> Signal | None:
        if ev.key is None:
            return None
        minute = int(epoch // 60)
        state = self.keys.get(ev.key)
        if state is None:
            state = [minute, 0, -1, {}, {}]
            self.keys[ev.key] = state
        elif minute > state[0]:
            self._close(state, minute, params)
            state[0], state[1] = minute, 0
        state[1] += 1
        if (
            state[2] == state[0]
            or state[1] < params.min_per_minute
            and (params.hard_limit is None or state[1] < params.hard_limit)
        ):
            return None  # every threshold is at least min_per_minute (or hard_limit)
        threshold = self._threshold(state, (state[0] // 60) % 24, params)
        if threshold is None or state[1] < threshold:
            return None
        state[2] = state[0]
        return self._signal(ev.key, state[1], threshold)

    def _observe_key(
        self, key: str, indices: list[int], epoch: list[float], params: RateSpikeParams, hits: Hits
    ) -> None:
        state = self.keys.get(key)
        if state is None:
            state = self.keys[key] = [int(epoch[indices[0]] // 60), 0, -1, {}, {}]
        minute: int = state[0]
        count: int = state[1]
        alerted: int = state[2]
        buckets, cache, keep = state[3], state[4], params.history
        hard = params.hard_limit
        floor = params.min_per_minute if hard is None else min(params.min_per_minute, hard)
        closed: list[int] = []
        counts: list[int] = []
        for i in indices:
            now = int(epoch[i] // 60)
            if now > minute:
                closed.append(minute)
                counts.append(count)
                minute, count = now, 0
            count += 1
            if alerted == minute or count < floor:
                continue
            _replay(buckets, cache, closed, counts, minute, keep)
            closed, counts = [], []
            threshold = self._threshold(state, (minute // 60) % 24, params)
            if threshold is None or count < threshold:
                continue
            alerted = minute
            hits.append((i, self._signal(key, count, threshold)))
        _replay(buckets, cache, closed, counts, minute, keep)
        state[0], state[1], state[2] = minute, count, alerted

    @staticmethod
    def _signal(key: str, count: int, threshold: float) -> Signal:
        return Signal(
            "",
            f"rate spike on key {key}: {count} calls in one minute (threshold {threshold:.0f})",
            {"per_minute": count, "threshold": round(threshold, 1)},
        )

    def snapshot(self) -> dict[str, Any]:
        return {k: [s[0], s[1], s[2], {str(h): b for h, b in s[3].items()}] for k, s in self.keys.items()}

    def restore(self, state: dict[str, Any]) -> None:
        self.keys = {k: [s[0], s[1], s[2], {int(h): list(b) for h, b in s[3].items()}, {}] for k, s in state.items()}


class BadVersion:
    """Any use of a version known to be compromised/disabled, or a refusal naming that state."""

    def __init__(self) -> None:
        self.compromised: dict[str, set[int]] = {}
        self._pattern: tuple[str, re.Pattern[str]] | None = None

    def observe(self, ev: MonitorEvent, epoch: float, params: BadVersionParams) -> Signal | None:
        del epoch
        if ev.key is None:
            return None
        return self._check(ev.key, ev.version, ev.op, ev.result, ev.reason, params)

    def observe_columns(self, batch: IndexedColumns, params_of: ParamsOf) -> Hits:
        """``observe`` over a batch: only a blocked version's uses and the refused calls can fire."""
        cols = batch.cols
        versions, ops, results, reasons = cols.version, cols.op, cols.result, cols.reason
        hits: Hits = []
        with_blocked: set[str] = set()
        for key, indices in _keyed(batch):
            params: BadVersionParams = params_of[key]
            blocked = set(self.compromised.get(key) or ()) | set(params.versions.get(key) or ())
            if not blocked:
                continue
            with_blocked.add(key)
            for i in indices:
                if versions[i] in blocked or results[i] != "ok":
                    signal = self._check(key, versions[i], ops[i], results[i], reasons[i], params)
                    if signal is not None:
                        hits.append((i, signal))
        keys = cols.key
        for i in batch.not_ok:
            refused_key = keys[i]
            if refused_key is None or refused_key in with_blocked or not reasons[i]:
                continue
            signal = self._check(refused_key, versions[i], ops[i], results[i], reasons[i], params_of[refused_key])
            if signal is not None:
                hits.append((i, signal))
        return hits

    def _check(
        self, key: str, version: int | None, op: str, result: str, reason: str | None, params: BadVersionParams
    ) -> Signal | None:
        listed = self.compromised.get(key)
        configured = params.versions.get(key)
        if version is not None and (
            (listed is not None and version in listed) or (configured and version in configured)
        ):
            return Signal(
                f"v{version}",
                f"use of blocked version {version} of key {key} ({op}, {result})",
                {"version": version, "op": op, "result": result},
            )
        if result != "ok" and reason:
            if self._pattern is None or self._pattern[0] != params.reason_pattern:
                self._pattern = (params.reason_pattern, re.compile(params.reason_pattern, re.I))
            found = self._pattern[1].search(reason)
            if found:
                return Signal(
                    f"v{version}" if version is not None else found.group(0).lower(),
                    f"attempt to use a {found.group(0).lower()} version of key {key} ({op})",
                    {"version": version, "op": op, "reason": reason[:200]},
                )
        return None

    def snapshot(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        del state


class DeniedBurst:
    """Many refused calls in a short window for one key (or one actor without a key)."""

    def __init__(self) -> None:
        self.keys: dict[str, deque[float]] = {}

    def observe(self, ev: MonitorEvent, epoch: float, params: DeniedBurstParams) -> Signal | None:
        if ev.result == "ok" or ev.result not in params.results:
            return None
        return self._refused(_subject(ev), epoch, params)

    def observe_columns(self, batch: IndexedColumns, params_of: ParamsOf) -> Hits:
        """``observe`` over a batch: only the refused or failed calls are looked at."""
        cols = batch.cols
        hits: Hits = []
        for i in batch.not_ok:
            key = cols.key[i]
            params: DeniedBurstParams = params_of[key]
            if cols.result[i] not in params.results:
                continue
            subject = key if key is not None else f"actor:{cols.actor[i]}"
            signal = self._refused(subject, cols.epoch[i], params)
            if signal is not None:
                hits.append((i, signal))
        return hits

    def _refused(self, subject: str, epoch: float, params: DeniedBurstParams) -> Signal | None:
        window = self.keys.get(subject)
        if window is None or window.maxlen != params.threshold:
            window = self.keys[subject] = deque(window or (), maxlen=params.threshold)
        window.append(epoch)
        if len(window) >= params.threshold and epoch - window[0] <= params.window_seconds:
            window.clear()
            return Signal(
                "",
                f"burst of refused calls on {subject}: {params.threshold} within {params.window_seconds:.0f}s",
                {"refused": params.threshold, "window_seconds": params.window_seconds},
            )
        return None

    def snapshot(self) -> dict[str, Any]:
        return {k: list(v) for k, v in self.keys.items()}

    def restore(self, state: dict[str, Any]) -> None:
        self.keys = {k: deque(v) for k, v in state.items()}


def _outside(hours: tuple[int, int], hour: int) -> bool:
    start, end = hours
    return not (start <= hour < end) if start <= end else (end <= hour < start)


class OffHours(_TimedPerKey):
    """Use in an hour of day (UTC) the key rarely uses, or outside fixed ``hours``."""

    def __init__(self) -> None:
        self.keys: dict[str, list[Any]] = {}  # key -> [first_epoch, total, [24 counts]]

    def observe(self, ev: MonitorEvent, epoch: float, params: OffHoursParams) -> Signal | None:
        if ev.key is None:
            return None
        hour = int(epoch // 3600) % 24
        state = self.keys.get(ev.key)
        if state is None:
            state = self.keys[ev.key] = [epoch, 0, [0] * 24]
        counts: list[int] = state[2]
        total: int = state[1]
        fire = False
        if params.hours is not None:
            fire = _outside(params.hours, hour)
        elif total >= params.learn_events and epoch - state[0] >= params.learn_seconds:
            fire = counts[hour] < params.min_share * total
        counts[hour] += 1
        state[1] = total + 1
        if not fire:
            return None
        return self._signal(ev.key, hour, counts[hour], total)

    def _observe_key(
        self, key: str, indices: list[int], epoch: list[float], params: OffHoursParams, hits: Hits
    ) -> None:
        state = self.keys.get(key)
        if state is None:
            state = self.keys[key] = [epoch[indices[0]], 0, [0] * 24]
        first: float = state[0]
        total: int = state[1]
        counts: list[int] = state[2]
        fixed = None if params.hours is None else {h for h in range(24) if _outside(params.hours, h)}
        learn_events, learn_seconds, min_share = params.learn_events, params.learn_seconds, params.min_share
        for i in indices:
            at = epoch[i]
            hour = int(at // 3600) % 24
            if fixed is not None:
                fire = hour in fixed
            else:
                fire = total >= learn_events and at - first >= learn_seconds and counts[hour] < min_share * total
            counts[hour] += 1
            total += 1
            if fire:
                hits.append((i, self._signal(key, hour, counts[hour], total - 1)))
        state[1] = total

    @staticmethod
    def _signal(key: str, hour: int, count: int, total: int) -> Signal:
        return Signal(
            f"h{hour:02d}",
            f"key {key} used at an unusual hour ({hour:02d}:00 UTC)",
            {"hour": hour, "usual_share": round(count / max(total, 1), 4)},
        )

    def snapshot(self) -> dict[str, Any]:
        return dict(self.keys)

    def restore(self, state: dict[str, Any]) -> None:
        self.keys = {k: [s[0], s[1], list(s[2])] for k, s in state.items()}


_PRIVATE_172 = {f"172.{i}" for i in range(16, 32)}


def network_of(ip: str, ignore_private: bool) -> str | None:
    """The /16 of an IPv4 address or the /48 of an IPv6 one; None for private if asked."""
    if ":" in ip:
        lowered = ip.lower()
        if lowered.startswith("::ffff:"):
            return network_of(lowered[7:], ignore_private)
        if ignore_private and (lowered.startswith(("fc", "fd", "fe80")) or lowered == "::1"):
            return None
        return ":".join(lowered.split(":")[:3])
    parts = ip.split(".", 2)
    if len(parts) < 3 or not (parts[0].isdigit() and parts[1].isdigit()):
        return None  # not an address: "AWS Internal", "kms.amazonaws.com", ...
    net = f"{parts[0]}.{parts[1]}"
    if ignore_private and (parts[0] in ("10", "127") or net == "192.168" or net in _PRIVATE_172 or net == "169.254"):
        return None
    return net


class TwoNetworks:
    """The same key used from two different networks within a short window."""

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, float]] = {}
        self._networks: dict[bool, dict[str, str | None]] = {}  # ignore_private -> {ip: network_of(ip)}

    def observe(self, ev: MonitorEvent, epoch: float, params: TwoNetworksParams) -> Signal | None:
        if ev.key is None or not ev.source_ip:
            return None
        net = network_of(ev.source_ip, params.ignore_private)
        if net is None:
            return None
        seen = self.keys.get(ev.key)
        if seen is None:
            self.keys[ev.key] = {net: epoch}
            return None
        other = _refresh(seen, net, epoch, params.window_seconds)
        if other is None:
            return None
        return self._signal(ev.key, net, other, ev.source_ip, params)

    def observe_columns(self, batch: IndexedColumns, params_of: ParamsOf) -> Hits:
        """``observe`` over a batch, one loop per key, with each IP's network looked up once."""
        hits: Hits = []
        created: Created = []
        for key, indices in _keyed(batch):
            self._observe_key(key, indices, batch.cols, params_of[key], hits, created)
        _add_in_order(self.keys, created)
        return hits

    def _observe_key(
        self,
        key: str,
        indices: list[int],
        cols: EventColumns,
        params: TwoNetworksParams,
        hits: Hits,
        created: Created,
    ) -> None:
        ips, epoch, window = cols.source_ip, cols.epoch, params.window_seconds
        nets = self._network_cache(params.ignore_private)
        seen = self.keys.get(key)
        for i in indices:
            ip = ips[i]
            if not ip:
                continue
            try:
                net = nets[ip]
            except KeyError:
                net = nets[ip] = network_of(ip, params.ignore_private)
            if net is None:
                continue
            if seen is None:
                seen = {net: epoch[i]}
                created.append((i, key, seen))
            elif len(seen) == 1 and net in seen:
                seen[net] = epoch[i]  # what _refresh leaves in this case, whether or not it expired
            else:
                other = _refresh(seen, net, epoch[i], window)
                if other is not None:
                    hits.append((i, self._signal(key, net, other, ip, params)))

    def _network_cache(self, ignore_private: bool) -> dict[str, str | None]:
        cache = self._networks.get(ignore_private)
        if cache is None or len(cache) > 100_000:
            cache = self._networks[ignore_private] = {}
        return cache

    @staticmethod
    def _signal(key: str, net: str, other: str, source_ip: str, params: TwoNetworksParams) -> Signal:
        pair = "|".join(sorted((net, other)))
        return Signal(
            pair,
            f"key {key} used from two networks within {params.window_seconds:.0f}s ({other}.x and {net}.x)",
            {"networks": sorted((net, other)), "source_ip": source_ip},
        )

    def snapshot(self) -> dict[str, Any]:
        return {k: dict(v) for k, v in self.keys.items()}

    def restore(self, state: dict[str, Any]) -> None:
        self.keys = {k: dict(v) for k, v in state.items()}


def _refresh(seen: dict[str, float], net: str, epoch: float, window: float) -> str | None:
    """Drop networks last seen before the window, note ``net`` now; the first other one left."""
    horizon = epoch - window
    other = None
    for known, last in list(seen.items()):
        if last < horizon:
            del seen[known]
        elif known != net and other is None:
            other = known
    seen[net] = epoch
    return other


DETECTORS: dict[str, type[Detector]] = {
    "new_value": NewValue,
    "rate_spike": RateSpike,
    "bad_version": BadVersion,
    "denied_burst": DeniedBurst,
    "off_hours": OffHours,
    "two_networks": TwoNetworks,
}
