"""Alert delivery off the detection path: one worker thread and queue per sink.

Each alert is tried ``attempts`` times with exponential backoff; the outcome
(``delivered`` or, after the last try, ``dead`` with the payload kept for a
replay) is recorded in ``alert_deliveries``. Detection only enqueues.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, select

from keyguard.monitor import metrics
from keyguard.monitor.sinks.base import Sink, SinkError
from keyguard.store.db import write_tx
from keyguard.store.monitor_tables import AlertDelivery

log = logging.getLogger(__name__)
_DELIVERIES: Table = AlertDelivery.__table__  # type: ignore[assignment]
_STOP = object()


class _Worker(threading.Thread):
    def __init__(self, dispatcher: Dispatcher, sink: Sink) -> None:
        super().__init__(name=f"keyguard-sink-{sink.kind}", daemon=True)
        self.dispatcher = dispatcher
        self.sink = sink
        self.queue: queue.Queue[Any] = queue.Queue()

    def run(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is _STOP:
                    return
                self.dispatcher._deliver(self.sink, item)
            finally:
                self.queue.task_done()


class Dispatcher:
    """Fan alerts out to sinks on worker threads, with retries and a dead-letter record."""

    def __init__(
        self,
        engine: Engine | None,
        sinks: Sequence[Sink],
        *,
        attempts: int = 4,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.engine = engine
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self._sleep = sleep
        self._workers = [_Worker(self, sink) for sink in sinks]
        for worker in self._workers:
            worker.start()

    def submit(self, alert: dict[str, Any], *, only: set[str] | None = None) -> None:
        """Queue one alert for every sink, or for the sinks named in ``only`` (returns at once)."""
        for worker in self._workers:
            if only is None or worker.sink.name in only:
                worker.queue.put(alert)

    def submit_saved(self, alert_ids: Sequence[int]) -> None:
        """Queue the stored alerts ``alert_ids`` (as :func:`save_alerts` returned them) for every sink."""
        if self.engine is None or not alert_ids:
            return
        from keyguard.monitor.alerts import alert_dict
        from keyguard.store.monitor_tables import Alert

        alerts: Table = Alert.__table__  # type: ignore[assignment]
        with self.engine.connect() as conn:
            rows = conn.execute(select(alerts).where(alerts.c.id.in_(list(alert_ids))).order_by(alerts.c.id)).all()
        for row in rows:
            self.submit(alert_dict(row))

    @property
    def sink_names(self) -> list[str]:
        """Names (URLs without secrets) of the sinks, as recorded in ``alert_deliveries``."""
        return [worker.sink.name[:256] for worker in self._workers]

    def redeliver_pending(self, *, since: datetime) -> int:
        """Queue alerts created since ``since`` that a sink never finished (delivered or dead).

        Covers a stop between an alert's commit and its delivery (at least once).
        """
        if self.engine is None:
            return 0
        from keyguard.monitor.alerts import alert_dict
        from keyguard.store.monitor_tables import Alert

        alerts: Table = Alert.__table__  # type: ignore[assignment]
        queued = 0
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(alerts).where(alerts.c.created_at >= since, alerts.c.status != "closed").order_by(alerts.c.id)
            ).all()
            done: dict[int, set[str]] = {}
            for alert_id, sink in conn.execute(
                select(_DELIVERIES.c.alert_id, _DELIVERIES.c.sink).where(
                    _DELIVERIES.c.alert_id.in_([r.id for r in rows] or [-1])
                )
            ):
                done.setdefault(int(alert_id), set()).add(str(sink))
        names = set(self.sink_names)
        for row in rows:
            missing = names - done.get(int(row.id), set())
            if missing:
                self.submit(alert_dict(row), only=missing)
                queued += 1
        return queued

    def _deliver(self, sink: Sink, alert: dict[str, Any]) -> None:
        error: str | None = None
        tries = 0
        for tries in range(1, self.attempts + 1):
            try:
                sink.send(alert)
                error = None
                break
            except SinkError as exc:
                error = exc.message
            except Exception as exc:  # noqa: BLE001 - a sink bug must not kill the worker
                error = f"{sink.name}: {type(exc).__name__}"
            if tries < self.attempts:
                self._sleep(self.backoff * 2 ** (tries - 1))
        outcome = "delivered" if error is None else "dead"
        metrics.DELIVERIES.labels(sink=sink.kind, outcome=outcome).inc()
        if error is not None:
            log.warning("alert %s not delivered to %s: %s", alert.get("id"), sink.name, error)
        self._record(sink, alert, outcome, tries, error)

    def _record(self, sink: Sink, alert: dict[str, Any], outcome: str, tries: int, error: str | None) -> None:
        if self.engine is None or alert.get("id") is None:
            return
        try:
            with write_tx(self.engine) as conn:
                conn.execute(
                    _DELIVERIES.insert().values(
                        alert_id=int(alert["id"]),
                        sink=sink.name[:256],
                        outcome=outcome,
                        attempts=tries,
                        error=error,
                        payload=alert if outcome == "dead" else None,
                        at=datetime.now(UTC),
                    )
                )
        except Exception as exc:  # noqa: BLE001 - recording must not kill the worker
            log.warning("cannot record delivery of alert %s: %s", alert.get("id"), type(exc).__name__)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued alert was delivered or dead-lettered."""
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            while worker.queue.unfinished_tasks:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.01)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Deliver what is queued, then stop the workers."""
        self.flush(timeout)
        for worker in self._workers:
            worker.queue.put(_STOP)
        for worker in self._workers:
            worker.join(timeout)
            closer = getattr(worker.sink, "close", None)
            if callable(closer):
                closer()
