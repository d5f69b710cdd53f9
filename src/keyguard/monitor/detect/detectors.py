"""One small detector class per rule kind; each keeps bounded per-key state.

A detector sees every event (in time order) through :meth:`observe` and returns a
:class:`Signal` when the rule fires. State is plain JSON-able data so that the
engine can snapshot it for ``watch`` restarts.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

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


class Detector(Protocol):
    """What the engine needs of a detector."""

    def observe(self, ev: MonitorEvent, epoch: float, params: Any) -> Signal | None: ...

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
        label = params.field.replace("_", " ")
        return Signal(
            value[:200],
            f"new {label} {value[:80]} for key {ev.key}",
            {params.field: value[:512], "known_values": len(seen) - 1},
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


class RateSpike:
    """Per-minute rate against the key's own history for the same hour of day (median/MAD)."""

    def __init__(self) -> None:
        # key -> [minute, count, alerted_minute, {hour: [counts]}, {hour: threshold}]
        self.keys: dict[str, list[Any]] = {}

    def _close(self, state: list[Any], next_minute: int, params: RateSpikeParams) -> None:
        """Record the closed minute's count, then zeros for the idle minutes before the next."""
        minute, buckets, keep, cache = state[0], state[3], params.history, state[4]
        hour = (minute // 60) % 24
        bucket = buckets.setdefault(hour, [])
        bucket.append(state[1])
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
        return Signal(
            "",
            f"rate spike on key {ev.key}: {state[1]} calls in one minute (threshold {threshold:.0f})",
            {"per_minute": state[1], "threshold": round(threshold, 1)},
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
        version = ev.version
        listed = self.compromised.get(ev.key)
        configured = params.versions.get(ev.key)
        if version is not None and (
            (listed is not None and version in listed) or (configured and version in configured)
        ):
            return Signal(
                f"v{version}",
                f"use of blocked version {version} of key {ev.key} ({ev.op}, {ev.result})",
                {"version": version, "op": ev.op, "result": ev.result},
            )
        if ev.result != "ok" and ev.reason:
            if self._pattern is None or self._pattern[0] != params.reason_pattern:
                self._pattern = (params.reason_pattern, re.compile(params.reason_pattern, re.I))
            found = self._pattern[1].search(ev.reason)
            if found:
                return Signal(
                    f"v{version}" if version is not None else found.group(0).lower(),
                    f"attempt to use a {found.group(0).lower()} version of key {ev.key} ({ev.op})",
                    {"version": version, "op": ev.op, "reason": ev.reason[:200]},
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
        subject = _subject(ev)
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


class OffHours:
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
            start, end = params.hours
            fire = not (start <= hour < end) if start <= end else (end <= hour < start)
        elif total >= params.learn_events and epoch - state[0] >= params.learn_seconds:
            fire = counts[hour] < params.min_share * total
        counts[hour] += 1
        state[1] = total + 1
        if not fire:
            return None
        return Signal(
            f"h{hour:02d}",
            f"key {ev.key} used at an unusual hour ({hour:02d}:00 UTC)",
            {"hour": hour, "usual_share": round(counts[hour] / max(total, 1), 4)},
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
        horizon = epoch - params.window_seconds
        other = None
        for known, last in list(seen.items()):
            if last < horizon:
                del seen[known]
            elif known != net and other is None:
                other = known
        seen[net] = epoch
        if other is None:
            return None
        pair = "|".join(sorted((net, other)))
        return Signal(
            pair,
            f"key {ev.key} used from two networks within {params.window_seconds:.0f}s ({other}.x and {net}.x)",
            {"networks": sorted((net, other)), "source_ip": ev.source_ip},
        )

    def snapshot(self) -> dict[str, Any]:
        return {k: dict(v) for k, v in self.keys.items()}

    def restore(self, state: dict[str, Any]) -> None:
        self.keys = {k: dict(v) for k, v in state.items()}


DETECTORS: dict[str, type[Detector]] = {
    "new_value": NewValue,
    "rate_spike": RateSpike,
    "bad_version": BadVersion,
    "denied_burst": DeniedBurst,
    "off_hours": OffHours,
    "two_networks": TwoNetworks,
}
