"""``off_hours``: use in an hour of day the key rarely uses, or outside fixed hours.

Within the business hours of the key's owner (``business_hours`` of the rule, per
owner or ``*``) a use never alerts: a team working late is not an attack.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keyguard.monitor.detect.detectors.base import Hits, Signal, TimedPerKey
from keyguard.monitor.detect.rules import OffHoursParams
from keyguard.monitor.event import MonitorEvent


def _outside(hours: tuple[int, int], hour: int) -> bool:
    start, end = hours
    return not (start <= hour < end) if start <= end else (end <= hour < start)


class OffHours(TimedPerKey):
    """Use in an hour of day (UTC) the key rarely uses, or outside fixed ``hours``."""

    def __init__(self) -> None:
        self.keys: dict[str, list[Any]] = {}  # key -> [first_epoch, total, [24 counts]]
        self.owners: dict[str, str] = {}  # key -> owner (from the vault)

    def _business(self, key: str, params: OffHoursParams) -> tuple[int, int] | None:
        return params.business_of(self.owners.get(key)) if params.business_hours else None

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
        business = self._business(ev.key, params)
        if business is not None and not _outside(business, hour):
            fire = False
        elif params.hours is not None:
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
        business = self._business(key, params)
        quiet_ok = set() if business is None else {h for h in range(24) if not _outside(business, h)}
        learn_events, learn_seconds, min_share = params.learn_events, params.learn_seconds, params.min_share
        for i in indices:
            at = epoch[i]
            hour = int(at // 3600) % 24
            if hour in quiet_ok:
                fire = False
            elif fixed is not None:
                fire = hour in fixed
            else:
                fire = total >= learn_events and at - first >= learn_seconds and counts[hour] < min_share * total
            counts[hour] += 1
            total += 1
            if fire:
                hits.append((i, self._signal(key, hour, counts[hour], total - 1)))
        state[1] = total

    def _observe_array(
        self, key: str, indices: Any, epochs: Any, epoch: list[float], params: OffHoursParams, hits: Hits
    ) -> None:
        """``_observe_key`` in array passes: each event's hour count and total before it, at once."""
        at = epochs[indices]
        state = self.keys.get(key)
        if state is None:
            state = self.keys[key] = [epoch[int(indices[0])], 0, [0] * 24]
        first: float = state[0]
        total: int = state[1]
        counts: list[int] = state[2]
        hours = np.floor_divide(at, 3600.0).astype(np.int64) % 24
        # the events of this batch in the same hour before each one: rank within its hour
        order = np.argsort(hours, kind="stable")
        ranked = hours[order]
        group_start = np.flatnonzero(np.concatenate(([True], ranked[1:] != ranked[:-1])))
        sizes = np.diff(np.concatenate((group_start, [len(ranked)])))
        rank = np.empty(len(hours), dtype=np.int64)
        rank[order] = np.arange(len(hours), dtype=np.int64) - np.repeat(group_start, sizes)
        before = np.asarray(counts, dtype=np.int64)[hours] + rank
        totals = total + np.arange(len(hours), dtype=np.int64)
        business = self._business(key, params)
        quiet = np.zeros(24, dtype=bool)
        if business is not None:
            quiet[[h for h in range(24) if not _outside(business, h)]] = True
        if params.hours is not None:
            outside = np.asarray([_outside(params.hours, h) for h in range(24)])
            fire = outside[hours]
        else:
            fire = (
                (totals >= params.learn_events)
                & (at - first >= params.learn_seconds)
                & (before < params.min_share * totals)
            )
        fire &= ~quiet[hours]
        for j in np.flatnonzero(fire).tolist():
            hour = int(hours[j])
            hits.append((int(indices[j]), self._signal(key, hour, int(before[j]) + 1, int(totals[j]))))
        for hour, added in enumerate(np.bincount(hours, minlength=24).tolist()):
            counts[hour] += added
        state[1] = total + len(hours)

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
