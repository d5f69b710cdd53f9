"""``keyguard watch``: detection on new events, alerts delivered within a second.

Each step reads new events (the audit table by id cursor, followed files by byte
offset), stores followed-file events in ``imported_events``, runs detection, and
commits alerts, the detector snapshot and the cursors in ONE transaction, so a
restart neither re-alerts nor misses events. New alerts go to the dispatcher,
which delivers them on its own threads. On PostgreSQL the loop wakes on
``LISTEN keyguard_audit``; it also polls every 250 ms.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, select
from sqlalchemy.exc import SQLAlchemyError

from keyguard.monitor import metrics
from keyguard.monitor.alerts import alert_dict, save_alerts_in
from keyguard.monitor.delivery import Dispatcher
from keyguard.monitor.detect.engine import DetectionEngine
from keyguard.monitor.detector_state import DETECTOR_STATE, key_owners, load_detector, vault_context
from keyguard.monitor.follow import AuditFollower, FileCursor, FileFollower
from keyguard.monitor.pipeline import store_events
from keyguard.monitor.store import get_state, put_state
from keyguard.store.db import write_tx
from keyguard.store.monitor_tables import Alert

log = logging.getLogger(__name__)
AUDIT_CURSOR = "cursor:audit_events"
NOTIFY_CHANNEL = "keyguard_audit"
POLL_SECONDS = 0.25
REDELIVER_WINDOW = timedelta(hours=1)
_ALERTS: Table = Alert.__table__  # type: ignore[assignment]


@dataclass
class StepResult:
    """What one step did."""

    events: int = 0
    alerts: int = 0


class Watcher:
    """Follows the sources, detects, persists and hands new alerts to the dispatcher."""

    def __init__(
        self,
        engine: Engine,
        *,
        dispatcher: Dispatcher | None = None,
        files: Sequence[FileFollower] = (),
        detector: DetectionEngine | None = None,
        follow_audit: bool = True,
        snapshot_every: float = 1.0,
    ) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self.detector = detector or load_detector(engine)
        self.audit = AuditFollower(engine) if follow_audit else None
        self.files = list(files)
        self.total = StepResult()
        self.snapshot_every = snapshot_every
        self._last_context = 0.0
        self._dirty_files: set[FileFollower] = set()
        self._snapshot_cost = 0.0
        self._load_positions()
        if dispatcher is not None:
            dispatcher.redeliver_pending(since=datetime.now(UTC) - REDELIVER_WINDOW)

    def _load_positions(self) -> None:
        """Cursors from ``monitor_state`` (where the last snapshot left off)."""
        state = get_state(self.engine, AUDIT_CURSOR)
        if self.audit is not None:
            self.audit.cursor = int(state["id"]) if state else 0
        for follower in self.files:
            saved = get_state(self.engine, follower.state_name)
            follower.cursor = FileCursor(**saved) if saved else FileCursor()
        self._audit_cursor = self.audit.cursor if self.audit is not None else 0
        self._persisted_at = time.monotonic()
        self._dirty = False
        self._dirty_files.clear()

    def recover(self) -> None:
        """After a failed step: go back to the last snapshot and cursors (events are replayed)."""
        fresh = DetectionEngine(self.detector.rules, tiers=self.detector.tiers)
        saved = get_state(self.engine, DETECTOR_STATE)
        if saved is not None:
            fresh.restore(saved)
        self.detector = fresh
        self._last_context = 0.0
        self._load_positions()

    def _refresh_context(self) -> None:
        now = time.monotonic()
        if now - self._last_context >= 5.0:
            tiers, blocked = vault_context(self.engine)
            self.detector.set_tiers(tiers)
            self.detector.set_compromised(blocked)
            self.detector.set_owners(key_owners(self.engine))
            self._last_context = now

    def step(self, *, persist: bool = False) -> StepResult:
        """Process everything new once; return counts.

        Alerts are committed at once; the detector snapshot and the cursors are
        committed together at most every ``snapshot_every`` seconds (or when
        ``persist``). After a crash the events since the last snapshot are replayed,
        and replayed alerts are recognised by their group and time, so nothing is
        raised or delivered twice and nothing is missed.
        """
        self._refresh_context()
        result = StepResult()
        updates = []
        if self.audit is not None:
            events, self._audit_cursor = self.audit.read()
            self.audit.cursor = self._audit_cursor
            if events:
                metrics.count_events(events)
                updates.extend(self.detector.process_many(events))
                result.events += len(events)
        for follower in self.files:
            events, cursor = follower.read()
            if cursor != follower.cursor:
                follower.cursor = cursor
                self._dirty_files.add(follower)
            if events:
                fresh = store_events(self.engine, events)
                metrics.count_events(fresh)
                updates.extend(self.detector.process_many(events))
                result.events += len(events)
        self.total.events += result.events
        if result.events or self._dirty_files:
            self._dirty = True
        # A big detector state is snapshotted less often: at most 10% of the time goes to it.
        due = time.monotonic() - self._persisted_at >= max(self.snapshot_every, 10 * self._snapshot_cost)
        if not updates and not (self._dirty and (persist or due)):
            return result
        with write_tx(self.engine) as conn:
            created = save_alerts_in(conn, updates) if updates else []
            if self._dirty and (persist or due):
                started = time.monotonic()
                put_state(conn, DETECTOR_STATE, self.detector.snapshot())
                self._snapshot_cost = time.monotonic() - started
                if self.audit is not None:
                    put_state(conn, AUDIT_CURSOR, {"id": self._audit_cursor})
                for follower in self._dirty_files:
                    put_state(conn, follower.state_name, follower.cursor.to_json())
                self._dirty_files.clear()
                self._dirty = False
                self._persisted_at = time.monotonic()
            rows = conn.execute(select(_ALERTS).where(_ALERTS.c.id.in_(created))).all() if created else []
        if rows and self.dispatcher is not None:
            for row in rows:
                self.dispatcher.submit(alert_dict(row))
        result.alerts = len(created)
        self.total.alerts += result.alerts
        return result

    def persist(self) -> None:
        """Commit the detector snapshot and cursors now (on exit)."""
        self.step(persist=True)

    def run_once(self) -> StepResult:
        """Process the whole backlog, persist, then return."""
        while self.step().events:
            pass
        self.persist()
        return self.total

    def run(self, stop: threading.Event, poll: float = POLL_SECONDS) -> StepResult:
        """Loop until ``stop`` is set: wake on NOTIFY (PostgreSQL) or every ``poll`` seconds."""
        listener = _Listener(self.engine) if self.engine.dialect.name == "postgresql" else None
        failures = 0
        try:
            while not stop.is_set():
                try:
                    step = self.step()
                    if failures:
                        log.warning("watch recovered after %d failed steps", failures)
                    failures = 0
                except (SQLAlchemyError, OSError) as exc:
                    failures += 1
                    log.warning("watch step failed (%s); retrying from the last snapshot", type(exc).__name__)
                    stop.wait(min(0.25 * 2**failures, 5.0))
                    try:
                        self.recover()
                    except (SQLAlchemyError, OSError):
                        pass
                    continue
                if step.events:
                    continue  # more may be waiting: do not sleep
                if listener is not None:
                    listener.wait(poll)
                else:
                    stop.wait(poll)
        finally:
            if listener is not None:
                listener.close()
            try:
                self.persist()
            except (SQLAlchemyError, OSError) as exc:
                log.warning("could not persist the watch state on exit: %s", type(exc).__name__)
        return self.total


class _Listener:
    """``LISTEN keyguard_audit`` on a dedicated psycopg connection."""

    def __init__(self, engine: Engine) -> None:
        self._conn: Any = None
        try:
            import psycopg

            url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._conn = psycopg.connect(url, autocommit=True)
            self._conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except Exception as exc:  # noqa: BLE001 - polling still works without it
            log.warning("LISTEN unavailable, polling only: %s", type(exc).__name__)
            self._conn = None

    def wait(self, timeout: float) -> None:
        """Return on a notification or after ``timeout`` seconds."""
        if self._conn is None:
            time.sleep(timeout)
            return
        try:
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                break
        except Exception as exc:  # noqa: BLE001 - the connection dropped: poll from now on
            log.warning("LISTEN connection lost, polling only: %s", type(exc).__name__)
            self.close()
            self._conn = None

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001, S110 - closing a broken connection
                pass


@dataclass
class BackgroundWatch:
    """A watcher running on its own thread (for ``keyguard serve``); ``stop()`` ends it."""

    watcher: Watcher
    thread: threading.Thread
    stop_event: threading.Event
    dispatcher: Dispatcher | None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop, persist, and deliver what is queued."""
        self.stop_event.set()
        self.thread.join(timeout)
        if self.dispatcher is not None:
            self.dispatcher.close(timeout)


def start_background(engine: Engine, sinks: Sequence[Any] = (), *, poll: float = POLL_SECONDS) -> BackgroundWatch:
    """Start ``watch`` on a daemon thread with ``sinks`` (from :func:`~keyguard.monitor.sinks.parse_sink`)."""
    dispatcher = Dispatcher(engine, list(sinks)) if sinks else None
    watcher = Watcher(engine, dispatcher=dispatcher)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop, poll), name="keyguard-watch", daemon=True)
    thread.start()
    return BackgroundWatch(watcher, thread, stop, dispatcher)
