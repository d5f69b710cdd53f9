"""Prometheus counters of the monitor (exposed by the API at ``/metrics``).

Labels are bounded: imported events carry key names chosen by whoever wrote the
log, so events are counted by result only (key names are not published).
"""

from __future__ import annotations

from collections import Counter as _Tally
from collections.abc import Iterable

from prometheus_client import Counter

from keyguard.monitor.event import RESULTS, MonitorEvent

EVENTS = Counter(
    "keyguard_monitor_events_total",
    "Events seen by the monitor, by result",
    ["result"],
)
ALERTS = Counter("keyguard_alerts_total", "Alerts raised, by rule", ["rule"])
DELIVERIES = Counter(
    "keyguard_alert_deliveries_total",
    "Alert deliveries, by sink kind and outcome",
    ["sink", "outcome"],
)


def _result(result: str) -> str:
    return result if result in RESULTS else "other"


def count_events(events: Iterable[MonitorEvent]) -> None:
    """Add a batch of events to the events counter (tallied first: one call per label set)."""
    tally = _Tally(_result(ev.result) for ev in events)
    for result, n in tally.items():
        EVENTS.labels(result=result).inc(n)


def count_tally(tally: Iterable[tuple[str, str, int]]) -> None:
    """Add ``(key, result, count)`` rows to the events counter (the key is not a label)."""
    by_result = _Tally[str]()
    for _key, result, n in tally:
        by_result[_result(result)] += n
    for result, n in by_result.items():
        EVENTS.labels(result=result).inc(n)
