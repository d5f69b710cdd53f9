"""Append-only audit log with group commit.

Callers append an event and block until it is durable; concurrent callers'
events are written in one transaction (a leader writes for everyone waiting),
so fsync cost is shared and no event is ever skipped. The chain is extended
under the database's write lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL
``SELECT … FOR UPDATE`` of the head row), so several processes and API nodes
keep one valid chain. If the write fails, every waiting operation fails closed.

Before extending the chain the writer checks the head it extends against the
vault's signed checkpoint (one HMAC of the head row it reads anyway, no replay):
a forged or blanked head is never re-signed by a legitimate write, and a head
whose counter went back (a database restored to an older state) is refused.

Operations that change state write their event in their own transaction
(:meth:`AuditLog.lock_head` then :meth:`AuditLog.append_in`), so the change and
its event commit together or not at all; pure crypto operations, whose only
state is their event, keep the group-commit path.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, TextClause, bindparam, text

from keyguard.audit.chain import canonical_parts, checkpoint, head_problem, linked_hash
from keyguard.errors import AuditWriteError, ChainIntegrityError
from keyguard.store.db import write_tx

RESULTS = ("ok", "denied", "error")
_TOUCH_EVERY = 1.0  # seconds: last-used times are kept to this precision
_GATHER = 0.001  # seconds a leader waits at most for the callers of the last batch
_WRITER_IDLE = 5.0  # seconds before an idle background writer thread exits


class _Deferred:
    """Where the appends of a deferred block go: thread futures, or futures of one event loop."""

    __slots__ = ("futures", "loop", "waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.futures: list[Future[dict[str, Any]]] = []
        self.waiters: list[asyncio.Future[dict[str, Any]]] = []


_deferred: ContextVar[_Deferred | None] = ContextVar("keyguard_audit_deferred", default=None)


@contextmanager
def deferred_appends() -> Iterator[list[Future[dict[str, Any]]]]:
    """Queue the appends made inside the block instead of blocking on each one.

    Yields the futures of those events. The caller must wait for all of them
    before it lets any result of the operation out (an asyncio server awaits
    them with ``asyncio.wrap_future``): fail closed still holds, but no thread
    is parked while the batch is made durable, and a background writer batches
    the events of every request in flight (group commit).
    """
    sink = _Deferred(None)
    token = _deferred.set(sink)
    try:
        yield sink.futures
    finally:
        _deferred.reset(token)


class loop_appends:  # noqa: N801 - used like the function-style context manager above
    """:func:`deferred_appends` for code running on an event loop: yields futures of that loop.

    Enter it on the loop's own thread. The writer settles all the futures of a
    batch that belong to one loop with a single ``call_soon_threadsafe``, where
    thread futures wrapped with ``asyncio.wrap_future`` cost a locked future, a
    callback chain and a loop wake-up per event. A plain class, not a generator:
    it is entered on every request.
    """

    __slots__ = ("_sink", "_token")

    def __enter__(self) -> list[asyncio.Future[dict[str, Any]]]:
        self._sink = _Deferred(asyncio.get_running_loop())
        self._token = _deferred.set(self._sink)
        return self._sink.waiters

    def __exit__(self, *_exc: object) -> None:
        _deferred.reset(self._token)


# The hot path's statements, written once as plain SQL and run on the DBAPI cursor of
# the write transaction's connection: SQLAlchemy's statement execution and per-row
# parameter processing cost more CPU than the database's own work, and all of it runs
# while this process holds the chain's write lock. Placeholders are ``:name``, turned
# into the driver's named style by :func:`_for_driver`.
_INSERT_EVENTS = (
    'INSERT INTO audit_events ("id", "ts", "actor", "source_ip", "user_agent", "op", "key", "version", '
    '"result", "reason", "request_id", "prev_hash", "hash") VALUES (:id, :ts, :actor, :source_ip, '
    ":user_agent, :op, :key, :version, :result, :reason, :request_id, :prev_hash, :hash)"
)
_SELECT_HEAD = 'SELECT last_id, last_hash, "checkpoint", counter FROM audit_head WHERE id = 1'
_UPDATE_HEAD = "UPDATE audit_head SET last_id = :last_id, last_hash = :last_hash, counter = :counter WHERE id = 1"
_UPDATE_HEAD_CHECKPOINT = (
    'UPDATE audit_head SET last_id = :last_id, last_hash = :last_hash, "checkpoint" = :checkpoint, '
    "counter = :counter WHERE id = 1"
)
_NOTIFY = "SELECT pg_notify('keyguard_audit', :id)"
_PLACEHOLDER = re.compile(r":([a-z_]+)")
_AT = bindparam("at", type_=DateTime(timezone=True))
_TOUCH_VERSION: TextClause = text(
    "UPDATE key_versions SET last_used_at = :at WHERE version = :version "
    "AND key_id = (SELECT id FROM keys WHERE name = :key)"
).bindparams(_AT)
_TOUCH_KEY: TextClause = text("UPDATE keys SET last_used_at = :at WHERE name = :key").bindparams(_AT)


def format_ts(at: datetime) -> str:
    """Fixed-width RFC 3339 UTC (sortable as text)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _for_driver(sql: str, dialect: str) -> str:
    """``sql`` with its ``:name`` placeholders in the driver's named style (sqlite3 takes them as they are)."""
    return sql if dialect == "sqlite" else _PLACEHOLDER.sub(r"%(\1)s", sql)


@dataclass
class EventDraft:
    """An event before the chain gives it an id and hashes."""

    actor: str
    op: str
    result: str
    key: str | None = None
    version: int | None = None
    reason: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    ts: datetime | None = None


@dataclass
class _Pending:
    draft: EventDraft
    done: bool = False
    record: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    future: Future[dict[str, Any]] | None = None
    waiter: asyncio.Future[dict[str, Any]] | None = None


def write_error(cause: BaseException) -> AuditWriteError:
    """The refusal an operation gets when its event could not be written (fail closed)."""
    hint = type(cause).__name__
    if isinstance(cause, ChainIntegrityError):  # the reason names an event id and a state, never a secret
        hint = f"{hint}: {cause.message}; run keyguard audit verify"
    return AuditWriteError("the audit event could not be written, so the operation was refused", hint=hint)


def _row(draft: EventDraft, now: datetime) -> dict[str, Any]:
    """The stored record of ``draft``; ``id``, ``prev_hash`` and ``hash`` are filled under the write lock."""
    return {
        "id": 0,
        "ts": format_ts(draft.ts or now),
        "actor": draft.actor,
        "source_ip": draft.source_ip,
        "user_agent": draft.user_agent,
        "op": draft.op,
        "key": draft.key,
        "version": draft.version,
        "result": draft.result,
        "reason": draft.reason,
        "request_id": draft.request_id,
        "prev_hash": "",
    }


def _settle(batch: list[_Pending]) -> None:
    """Resolve the loop futures of a written batch (runs on their loop)."""
    for pending in batch:
        waiter = pending.waiter
        if waiter is None or waiter.done():  # done: the caller was cancelled
            continue
        if pending.error is None:
            waiter.set_result(pending.record)
        else:
            waiter.set_exception(write_error(pending.error))


class AuditLog:
    """The chain writer of one process."""

    def __init__(self, engine: Engine, checkpoint_key: bytes | None = None) -> None:
        self._engine = engine
        self._checkpoint_key = checkpoint_key
        lock = threading.Lock()
        self._cv = threading.Condition(lock)
        self._grew = threading.Condition(lock)  # a leader gathering its batch waits on this
        self._gathering = False
        self._last_batch = 1
        self._queue: list[_Pending] = []
        self._writing = False
        self._is_pg = engine.dialect.name == "postgresql"
        dialect = engine.dialect.name
        self._insert_sql = _for_driver(_INSERT_EVENTS, dialect)
        self._head_sql = _SELECT_HEAD + (" FOR UPDATE" if self._is_pg else "")
        self._update_sql = _for_driver(_UPDATE_HEAD if checkpoint_key is None else _UPDATE_HEAD_CHECKPOINT, dialect)
        self._notify_sql = _for_driver(_NOTIFY, dialect)
        self._touched: dict[tuple[str, int], float] = {}
        # Events of deferred appends made on an event loop, kept until the end of the loop's turn.
        self._turns: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        self._seen = 0  # the highest head counter this process saw committed: heads never go back
        self._writer_running = False
        # SQLite: the writers of several processes (serve --workers N, the CLI) queue on
        # an flock beside the database, which hands over at once, rather than on
        # SQLite's busy handler, which sleeps 1, 2, 5, 10… ms between retries.
        self._lock_path: str | None = None
        database = engine.url.database
        if engine.dialect.name == "sqlite" and database and database != ":memory:":
            self._lock_path = os.path.abspath(database) + ".audit-lock"
        # SQLite: the writer keeps its connection and lock file open (checking a connection out
        # of the pool and back, and opening the lock file, cost more than a batch's inserts).
        self._keep = self._lock_path is not None
        self._raw: Any = None
        self._fd: int | None = None
        self._owner = os.getpid()

    def append(self, draft: EventDraft) -> dict[str, Any]:
        """Append one event; returns the stored record. Raises :class:`AuditWriteError`.

        Inside :func:`deferred_appends` the event is queued and ``{}`` is
        returned at once; its future resolves when the event is durable.
        """
        sink = _deferred.get()
        if sink is not None:
            if sink.loop is None:
                future: Future[dict[str, Any]] = Future()
                sink.futures.append(future)
                self._submit([_Pending(draft, future=future)])
            else:
                waiter = sink.loop.create_future()
                sink.waiters.append(waiter)
                self._submit_from_loop(_Pending(draft, waiter=waiter), sink.loop)
            return {}
        self._hand_over_here()
        pending = _Pending(draft)
        with self._cv:
            self._queue.append(pending)
            if self._gathering and len(self._queue) >= self._last_batch:
                self._grew.notify()  # as in _submit: wake the gathering leader only when its batch is full
            while not pending.done:
                if self._writing:
                    self._cv.wait()
                    continue
                self._lead()
        if pending.error is not None:
            raise write_error(pending.error)
        return pending.record

    def _lead(self) -> None:
        """Write the queued events as one batch (called holding ``_cv``; released while writing)."""
        self._writing = True
        self._gather()
        batch, self._queue = self._queue, []
        self._last_batch = len(batch)
        self._cv.release()
        try:
            self._write(batch)
        finally:
            self._cv.acquire()
            self._writing = False
            self._cv.notify_all()

    def _gather(self) -> None:
        """Give the callers released by the last batch a moment to queue again (hold ``_cv``).

        Without it, closed-loop callers split into two groups that alternate
        between batches, each paying a whole commit to wait for the other.
        Waits at most ``_GATHER`` and only while the queue is shorter than the
        last batch, so a lone caller never waits.
        """
        deadline = time.monotonic() + _GATHER
        self._gathering = True
        try:
            while len(self._queue) < self._last_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._grew.wait(remaining)
        finally:
            self._gathering = False

    def _submit_from_loop(self, pending: _Pending, loop: asyncio.AbstractEventLoop) -> None:
        """Keep a loop's event until the end of this loop turn, then hand the turn's events over at once.

        Every request answered in one turn appends here without a lock; the writer
        is woken (and the queue's lock taken) once per turn, not once per event, and
        it finds the whole turn's events when it wakes.
        """
        if asyncio._get_running_loop() is not loop:  # appended from a worker thread: no turn to wait for
            self._submit([pending])
            return
        turn = self._turns.get(loop)
        if turn is None:
            turn = self._turns[loop] = []
            loop.call_soon(self._hand_over, loop)
        turn.append(pending)

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """Queue the events ``loop`` kept during its last turn (runs on that loop)."""
        turn = self._turns.pop(loop, None)
        if turn:
            self._submit(turn)

    def _hand_over_here(self) -> None:
        """Queue what this thread's running loop kept, before a blocking append: events keep their order."""
        if not self._turns:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._hand_over(loop)

    def _submit(self, events: list[_Pending]) -> None:
        with self._cv:
            was_empty = not self._queue
            self._queue.extend(events)
            # Wake a thread only when it has something new to do: every wake-up is a
            # thread switch and a GIL hand-over. A gathering leader waits for the queue to
            # reach the last batch's size; an idle writer waits for the first event (a
            # writer that is writing, or already woken, looks at the queue again anyway).
            if self._gathering:
                if len(self._queue) >= self._last_batch:
                    self._grew.notify()
            elif was_empty:
                self._cv.notify_all()
            if not self._writer_running:
                self._writer_running = True
                threading.Thread(target=self._writer, name="keyguard-audit-writer", daemon=True).start()

    def _writer(self) -> None:
        """Leader for deferred appends (the same batches as blocking callers); exits when idle."""
        with self._cv:
            while True:
                if not self._queue or self._writing:
                    if not self._cv.wait(_WRITER_IDLE) and not self._queue:
                        self._writer_running = False
                        return
                    continue
                self._lead()

    @contextmanager
    def _process_lock(self) -> Iterator[None]:
        if self._lock_path is None:
            yield
            return
        fd = self._lock_fd()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _lock_fd(self) -> int:
        """The lock file's descriptor, opened once per process (a killed process's lock goes with it)."""
        if self._owner != os.getpid():
            self._forget_inherited()
        if self._fd is None:
            assert self._lock_path is not None
            # An flock belongs to the open file, which a fork would share: a child opens its own.
            self._fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd

    def _forget_inherited(self) -> None:
        """After a fork: never use the parent's descriptor or SQLite connection (leave them to the parent)."""
        self._owner = os.getpid()
        self._fd = None
        self._raw = None

    def _connection(self) -> Any:
        """The DBAPI connection of plain batches: kept open on SQLite, from the pool otherwise."""
        if not self._keep:
            return self._engine.raw_connection()
        if self._owner != os.getpid():
            self._forget_inherited()
        if self._raw is None:
            self._raw = self._engine.raw_connection()
        return self._raw

    def _release(self, raw: Any, failed: bool) -> None:
        if not self._keep:
            raw.close()  # back to the pool
        elif failed:
            self._raw = None  # a connection that failed a batch is not trusted with the next one
            raw.invalidate()

    def close(self) -> None:
        """Close the kept connection and lock file (after the batch being written, if any)."""
        with self._cv:
            while self._writing:
                self._cv.wait()
            raw, fd = self._raw, self._fd
            self._raw = self._fd = None
            if self._owner != os.getpid():
                return
            if raw is not None:
                raw.close()
            if fd is not None:
                os.close(fd)

    def _write(self, batch: list[_Pending]) -> None:
        now = datetime.now(UTC)
        # Everything but the chain links is prepared before taking the write lock.
        rows = [_row(pending.draft, now) for pending in batch]
        parts = [canonical_parts(row) for row in rows]
        due = self._due_touches(rows)
        try:
            with self._process_lock(), self._transaction(with_orm=bool(due)) as (cursor, conn):
                counter = self._extend(cursor, rows, parts)
                if conn is not None:
                    self._touch(conn, due)
        except Exception as exc:  # noqa: BLE001 - fail closed for every waiter
            self._finish(batch, exc)
            return
        self.committed(counter)
        for pending, record in zip(batch, rows, strict=True):
            pending.record = record
        self._finish(batch, None)

    def _read_head(self, cursor: Any) -> tuple[int, str, int]:
        """Read (and on PostgreSQL lock) the head; refuse a head the vault did not sign or an older one."""
        cursor.execute(self._head_sql)
        head = cursor.fetchone()
        if head is None:
            raise LookupError("the audit head row is missing")
        last_id, last_hash, mark, counter = int(head[0]), str(head[1]), head[2], int(head[3] or 0)
        problem = head_problem(self._checkpoint_key, last_id, last_hash, counter, mark)
        if problem is not None:
            raise ChainIntegrityError(last_id, problem)
        if counter < self._seen:
            raise ChainIntegrityError(
                last_id,
                f"the head went back from counter {self._seen} to {counter}: the database was restored",
            )
        return last_id, last_hash, counter

    def _extend(
        self, cursor: Any, rows: list[dict[str, Any]], parts: list[tuple[bytes, bytes, bytes] | None]
    ) -> int:
        """Chain ``rows`` onto the head in the cursor's transaction; returns the new head's counter.

        ``parts`` are the rows' canonical forms, encoded before the lock was taken:
        only the links and SHA-256 are left for the critical section.
        """
        last_id, last_hash, counter = self._read_head(cursor)
        for record, cut in zip(rows, parts, strict=True):
            last_id += 1
            record["id"] = last_id
            record["prev_hash"] = last_hash
            record["hash"] = last_hash = linked_hash(cut, record)
        cursor.executemany(self._insert_sql, rows)
        counter += 1
        values: dict[str, Any] = {"last_id": last_id, "last_hash": last_hash, "counter": counter}
        if self._checkpoint_key is not None:
            values["checkpoint"] = checkpoint(self._checkpoint_key, last_id, last_hash, counter)
        cursor.execute(self._update_sql, values)
        if self._is_pg:
            cursor.execute(self._notify_sql, {"id": str(last_id)})
        return counter

    def committed(self, counter: int) -> None:
        """Note a head counter that was committed (heads this process saw never go back)."""
        if counter > self._seen:
            self._seen = counter

    def lock_head(self, conn: Connection) -> None:
        """Take the chain's write lock in ``conn``'s transaction, before its state statements.

        PostgreSQL locks the head row (taken first, so a concurrent batch that
        records last-used times cannot deadlock with this transaction); on SQLite
        the write transaction (``BEGIN IMMEDIATE``) already holds the database's
        lock. A forged or older head refuses the operation here.
        """
        self._hand_over_here()
        cursor = conn.connection.cursor()
        try:
            self._read_head(cursor)
        finally:
            cursor.close()

    def append_in(self, conn: Connection, draft: EventDraft) -> tuple[dict[str, Any], int]:
        """Append ``draft`` inside ``conn``'s write transaction: it commits with the state change or not at all.

        Returns the record and the head counter; pass the counter to
        :meth:`committed` once the transaction has committed.
        """
        record = _row(draft, datetime.now(UTC))
        cursor = conn.connection.cursor()
        try:
            counter = self._extend(cursor, [record], [canonical_parts(record)])
        finally:
            cursor.close()
        return record, counter

    @contextmanager
    def _transaction(self, *, with_orm: bool) -> Iterator[tuple[Any, Connection | None]]:
        """A write transaction and its DBAPI cursor (see _INSERT_EVENTS).

        Most batches run straight on a pooled DBAPI connection: SQLAlchemy's
        per-transaction machinery costs more than the statements themselves. A batch
        that also records last-used times goes through SQLAlchemy (``with_orm``), whose
        type handling those statements need.
        """
        if with_orm:
            with write_tx(self._engine) as conn:
                cursor = conn.connection.cursor()
                try:
                    yield cursor, conn
                finally:
                    cursor.close()
            return
        raw = self._connection()
        failed = True
        try:
            cursor = raw.cursor()
            try:
                if not self._is_pg:
                    cursor.execute("BEGIN IMMEDIATE")
                yield cursor, None
                raw.commit()
                failed = False
            except BaseException:
                raw.rollback()
                raise
            finally:
                cursor.close()
        finally:
            self._release(raw, failed)

    @staticmethod
    def _finish(batch: list[_Pending], error: BaseException | None) -> None:
        loops: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        for pending in batch:
            pending.error = error
            pending.done = True
            if pending.future is not None:
                if error is None:
                    pending.future.set_result(pending.record)
                else:
                    pending.future.set_exception(write_error(error))
            if pending.waiter is not None:
                loops.setdefault(pending.waiter.get_loop(), []).append(pending)
        for loop, settled in loops.items():
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # the loop is closed: nobody waits for these any more
                continue

    def _due_touches(self, rows: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
        """The key versions whose last-used time is due (once a second each), with the time."""
        used = {(r["key"], r["version"]): r["ts"] for r in rows if r["result"] == "ok" and r["key"] and r["version"]}
        now = time.monotonic()
        due = []
        for (key, version), ts in used.items():
            if now - self._touched.get((key, version), -_TOUCH_EVERY) < _TOUCH_EVERY:
                continue
            self._touched[(key, version)] = now
            due.append((key, version, ts))
        return due

    @staticmethod
    def _touch(conn: Connection, due: list[tuple[str, int, str]]) -> None:
        """Record last-used times (in the batch's transaction)."""
        for key, version, ts in due:
            at = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            conn.execute(_TOUCH_VERSION, {"at": at, "version": version, "key": key})
            conn.execute(_TOUCH_KEY, {"at": at, "key": key})
