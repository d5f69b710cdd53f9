"""``rate_spike``: a minute's calls against the key's own history for the same hour of day."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from keyguard.monitor.detect.detectors.base import Hits, Signal, TimedPerKey
from keyguard.monitor.detect.rules import RateSpikeParams
from keyguard.monitor.event import MonitorEvent


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
    hours = ((laid // 60) % 24).astype(np.uint8)
    # one stable sort by hour (a radix sort on bytes) puts each hour's entries together, in order
    order = np.argsort(hours, kind="stable")
    by_hour = values[order]
    sizes = np.bincount(hours, minlength=24)
    hour_ends = np.cumsum(sizes)
    found = np.flatnonzero(sizes)
    first = order[(hour_ends - sizes)[found]]  # where each hour first appears
    for hour in found[np.argsort(first)].tolist():
        end, size = int(hour_ends[hour]), int(sizes[hour])
        bucket = buckets.setdefault(hour, [])
        cache.pop(hour, None)
        bucket.extend(by_hour[end - min(size, keep) : end].tolist())
        if len(bucket) > keep:
            del bucket[:-keep]


def _run_counts(open_count: int, heads: Any, events: int) -> list[int]:
    """Events in each run of a key's batch: run 0 continues the minute open before (``open_count``
    events already), each later run starts at one of ``heads``."""
    bounds = np.concatenate(([0], heads, [events]))
    sizes = np.diff(bounds)
    sizes[0] += open_count
    return sizes.tolist()  # type: ignore[no-any-return]


class RateSpike(TimedPerKey):
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

    def _observe_array(
        self, key: str, indices: Any, epochs: Any, epoch: list[float], params: RateSpikeParams, hits: Hits
    ) -> None:
        """``_observe_key`` in array passes: per-minute runs and counts at once, Python only where a
        minute's count reaches the threshold floor (the closes before it are replayed first)."""
        del epoch  # the times as floats are only needed by detectors that report them
        now = np.floor_divide(epochs[indices], 60.0).astype(np.int64)
        state = self.keys.get(key)
        if state is None:
            state = self.keys[key] = [int(now[0]), 0, -1, {}, {}]
        start_minute: int = state[0]
        # the open minute only moves forward: an event older than it counts in it
        minutes = np.maximum.accumulate(np.concatenate(([start_minute], now)))[1:]
        starts = np.empty(len(minutes), dtype=bool)
        starts[0] = minutes[0] != start_minute
        starts[1:] = minutes[1:] != minutes[:-1]
        run = np.cumsum(starts)  # run 0: the minute open before this batch
        heads = np.flatnonzero(starts)
        first_of_run = np.concatenate(([0], heads))
        position = np.arange(len(minutes), dtype=np.int64)
        counts = position - first_of_run[run] + 1
        counts[run == 0] += state[1]
        run_minutes: list[int] = [start_minute, *minutes[heads].tolist()]
        run_counts = _run_counts(int(state[1]), heads, len(minutes))
        hard = params.hard_limit
        floor = params.min_per_minute if hard is None else min(params.min_per_minute, hard)
        alerted: int = state[2]
        buckets, cache, keep = state[3], state[4], params.history
        replayed = 0
        for j in np.flatnonzero(counts >= floor).tolist():
            minute = run_minutes[int(run[j])]
            if alerted == minute:
                continue
            current = int(run[j])
            _replay(buckets, cache, run_minutes[replayed:current], run_counts[replayed:current], minute, keep)
            replayed = current
            count = int(counts[j])
            threshold = self._threshold(state, (minute // 60) % 24, params)
            if threshold is None or count < threshold:
                continue
            alerted = minute
            hits.append((int(indices[j]), self._signal(key, count, threshold)))
        last = len(run_minutes) - 1
        _replay(buckets, cache, run_minutes[replayed:last], run_counts[replayed:last], run_minutes[last], keep)
        state[0], state[1], state[2] = run_minutes[last], run_counts[last], alerted

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
