"""Bench: detection cost per event, per-event ``process`` against ``process_columns``.

    .venv/bin/python bench/detect_columns.py [--events 200000] [--repeat 3]

Builds a CloudTrail-like stream as the importer maps it (the distribution of
``monitor_import.generate``: 100 KMS keys used from three home addresses each, 50
access keys, 4 user agents, 40 actors, 30 days, 0.2% AccessDenied) directly as
``MonitorEvent`` values, then times the built-in rules over it on a fresh engine
each run: one event at a time, ``process_columns`` on prebuilt columns, and
``process_many`` (columns built from the events, then ``process_columns``).
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Callable
from typing import Any

from monitor_import import IAM_OPS, KMS_OPS, population  # the same population as the import bench

from keyguard.monitor.detect import DetectionEngine, load_rules
from keyguard.monitor.detect.columns import EventColumns
from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.importers.cloudtrail import event_from_record


def generate(n: int, seed: int = 7) -> list[MonitorEvent]:
    """``n`` events mapped from CloudTrail records distributed as in ``monitor_import.generate``."""
    rng = random.Random(seed)
    keys, access, home, agents = population()
    start = 1_767_225_600  # 2026-01-01T00:00:00Z
    step = 30 * 86400 / n
    events: list[MonitorEvent] = []
    for i in range(n):
        kms = rng.random() < 0.7
        record: dict[str, Any] = {
            "userIdentity": {
                "type": "IAMUser",
                "arn": f"arn:aws:iam::123456789012:user/svc-{i % 40}",
                "accessKeyId": access[i % 50],
            },
            "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + int(i * step))),
            "eventSource": "kms.amazonaws.com" if kms else "s3.amazonaws.com",
            "eventName": rng.choice(KMS_OPS if kms else IAM_OPS),
            "sourceIPAddress": home[i % 100][i % 3] if rng.random() < 0.9999 else "198.51.100.66",
            "userAgent": agents[i % 100 % 4],
            "requestParameters": {"keyId": keys[i % 100]} if kms else {"bucketName": "data"},
            "requestID": f"{i:08x}-req",
            "eventID": f"{i:08x}-0000-4000-8000-{seed:012d}",
        }
        if rng.random() < 0.002:
            record["errorCode"] = "AccessDenied"
            record["errorMessage"] = "not authorized"
        event = event_from_record(record, line=i + 1, name=None)
        assert isinstance(event, MonitorEvent)
        events.append(event)
    return events


def timed(run: Callable[[DetectionEngine], int], repeat: int) -> tuple[float, int]:
    """Best wall time of ``run`` on a fresh engine over ``repeat`` runs, and its update count."""
    rules = load_rules()
    best, updates = float("inf"), 0
    for _ in range(repeat):
        engine = DetectionEngine(rules)
        started = time.perf_counter()
        updates = run(engine)
        best = min(best, time.perf_counter() - started)
    return best, updates


def main() -> None:
    """Run the bench and print µs/event for each way of feeding the engine."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    events = generate(args.events)
    cols = EventColumns.from_events(events)
    gc.collect()
    gc.freeze()
    n = len(events)
    print(f"{n:,} events, {len({e.key for e in events})} keys")

    runs: dict[str, Callable[[DetectionEngine], int]] = {
        "process (per event)": lambda eng: sum(len(eng.process(ev)) for ev in events),
        "process_columns": lambda eng: len(eng.process_columns(cols)),
        "process_many (from_events + columns)": lambda eng: len(eng.process_many(events)),
    }
    for name, run in runs.items():
        seconds, updates = timed(run, args.repeat)
        print(f"{name:38s} {seconds * 1e6 / n:6.2f} µs/event  ({updates} updates)")
    building = min(_seconds(lambda: EventColumns.from_events(events)) for _ in range(args.repeat))
    print(f"{'EventColumns.from_events alone':38s} {building * 1e6 / n:6.2f} µs/event")


def _seconds(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
