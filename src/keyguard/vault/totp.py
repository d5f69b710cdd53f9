"""TOTP second factors: each code accepted once, and a lockout after repeated wrong codes.

A client's state lives in one ``client_otp`` row: the last accepted time step, the
failures of the current window, when the lockout they caused ends and how many
lockouts came before (the period doubles each time). Every decision is one write
transaction that holds the row (``FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE``
on SQLite), and a code is accepted by the conditional
``UPDATE … WHERE last_step < :step``, so two nodes sharing a database cannot both
accept one code, and a lockout seen by one node holds on every node and across
restarts. While locked, no code is even checked.

Codes and secrets never appear in a message or an audit reason.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from keyguard.clock import as_utc
from keyguard.store.db import write_tx
from keyguard.store.tables import ClientOtp

MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
BASE_LOCKOUT = timedelta(seconds=30)
MAX_LOCKOUT = timedelta(hours=24)
DRIFT_STEPS = 1  # codes of the previous and the next 30-second step are accepted too


@dataclass(frozen=True)
class OtpVerdict:
    """What one code check decided; ``reason`` is for the audit log (no code, no secret)."""

    accepted: bool
    reason: str
    locked_until: datetime | None = None


def lockout_period(lockouts_before: int) -> timedelta:
    """How long the ``lockouts_before + 1``-th lockout lasts: 30 s, 60 s, 120 s … at most a day."""
    return min(BASE_LOCKOUT * (1 << min(lockouts_before, 32)), MAX_LOCKOUT)


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code ``code`` is (within the drift), or None; constant time per candidate."""
    totp = pyotp.TOTP(secret)
    candidate = code.strip().encode("utf-8", "replace")
    if len(candidate) != totp.digits or not candidate.isdigit():
        return None
    current = int(now.timestamp()) // totp.interval
    found: int | None = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step).encode(), candidate):
            found = step
    return found


def ensure_state(conn: Connection, client_id: int) -> None:
    """Create the client's row if it has none (idempotent, safe under concurrency)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(ClientOtp)
        .values(client_id=client_id, last_step=0, failures=0, lockouts=0)
        .on_conflict_do_nothing(index_elements=["client_id"])
    )


def check_code(engine: Engine, client_id: int, secret: str, code: str, now: datetime) -> OtpVerdict:
    """Accept ``code`` once, or count a failure (and lock after :data:`MAX_FAILURES`)."""
    with write_tx(engine) as conn:
        ensure_state(conn, client_id)
        row = conn.execute(select(ClientOtp).where(ClientOtp.client_id == client_id).with_for_update()).one()
        locked = as_utc(row.locked_until) if row.locked_until is not None else None
        if locked is not None and locked > now:
            return OtpVerdict(False, "second factor locked", locked)
        step = matching_step(secret, code, now)
        if step is not None:
            taken = conn.execute(
                update(ClientOtp)
                .where(ClientOtp.client_id == client_id, ClientOtp.last_step < step)
                .values(last_step=step, failures=0, window_started_at=None, locked_until=None, lockouts=0)
            ).rowcount
            if taken == 1:
                return OtpVerdict(True, "second factor accepted")
            what = "second factor already used"
        else:
            what = "wrong second factor"
        started = as_utc(row.window_started_at) if row.window_started_at is not None else None
        fresh = started is None or now - started > FAILURE_WINDOW
        failures = 1 if fresh else row.failures + 1
        values: dict[str, object] = {"failures": failures, "window_started_at": now if fresh else started}
        until: datetime | None = None
        if failures >= MAX_FAILURES:
            until = now + lockout_period(row.lockouts)
            values.update(failures=0, window_started_at=None, locked_until=until, lockouts=row.lockouts + 1)
        conn.execute(update(ClientOtp).where(ClientOtp.client_id == client_id).values(**values))
    if until is not None:
        return OtpVerdict(False, f"{what}; {MAX_FAILURES} failures: locked until {until.isoformat()}", until)
    return OtpVerdict(False, f"{what} (failure {failures} of {MAX_FAILURES})")
