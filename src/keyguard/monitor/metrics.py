"""Prometheus counters of the monitor (exposed by the API at ``/metrics``)."""

from __future__ import annotations

from collections import Counter as _Tally
from collections.abc import Iterable

from prometheus_client import Counter

from keyguard.monitor.event import MonitorEvent

EVENTS = Counter(
    "keyguard_monitor_events_total",
    "Events seen by the monitor, by key and result",
    ["key", "result"],
)
ALERTS = Counter("keyguard_alerts_total", "Alerts raised, by rule", ["rule"])
DELIVERIES = Counter(
    "keyguard_alert_deliveries_total",
    "Alert deliveries, by sink kind and outcome",
    ["sink", "outcome"],
)


def count_events(events: Iterable[MonitorEvent]) -> None:
    """Add a batch of events to the events counter (tallied first: one call per label set)."""
    tally = _Tally((ev.key or "", ev.result) for ev in events)
    count_tally((key, result, n) for (key, result), n in tally.items())


def count_tally(tally: Iterable[tuple[str, str, int]]) -> None:
    """Add ``(key, result, count)`` rows to the events counter."""
    for key, result, n in tally:
        EVENTS.labels(key=key, result=result).inc(n)
