"""Injected time: every "now" in keyguard comes from a :class:`Clock`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Protocol

from keyguard.errors import UsageError


class Clock(Protocol):
    """A source of the current UTC time."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to (tests, dry runs)."""

    def __init__(self, at: datetime) -> None:
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def advance(self, delta: timedelta) -> None:
        self._at += delta


_OFFSET = re.compile(r"^([+-])(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str, clock: Clock | None = None) -> datetime:
    """Parse RFC 3339 (``2026-11-28T10:00:00Z``) or an offset from now (``-2h``, ``-30d``).

    Naive times are refused: an incident clock must never guess a time zone.
    """
    value = text.strip()
    match = _OFFSET.match(value)
    if match:
        sign, amount, unit = match.groups()
        delta = timedelta(**{_UNITS[unit]: int(amount)})
        now = (clock or SystemClock()).now()
        return now - delta if sign == "-" else now + delta
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"invalid time {value!r}", hint="use RFC 3339 like 2026-11-28T10:00:00Z or -2h") from None
    if parsed.tzinfo is None:
        raise UsageError(f"time {value!r} has no time zone", hint="add Z or an offset like +08:00")
    return parsed.astimezone(UTC)


def as_utc(at: datetime) -> datetime:
    """A stored datetime as aware UTC (SQLite hands back naive values, which are UTC)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def format_time(at: datetime) -> str:
    """RFC 3339 UTC with a ``Z`` suffix and microseconds only when present."""
    at = at.astimezone(UTC)
    text = at.isoformat(timespec="microseconds" if at.microsecond else "seconds")
    return text.replace("+00:00", "Z")
