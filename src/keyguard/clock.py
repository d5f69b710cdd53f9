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


_OFFSET = re.compile(r"^([+-])([0-9]+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# An incident clock looks back days or years, never centuries: anything further is a typo.
MAX_OFFSET = timedelta(days=100 * 366)
_OFFSET_HINT = "at most 100 years from now, e.g. -2h or -30d"


def parse_offset(text: str) -> timedelta | None:
    """``-2h`` → ``-2 hours``; None when ``text`` is not an offset; UsageError beyond :data:`MAX_OFFSET`."""
    value = text.strip()
    match = _OFFSET.match(value)
    if not match:
        return None
    sign, amount, unit = match.groups()
    if len(amount) > 12:
        raise UsageError(f"time offset {value!r} is out of range", hint=_OFFSET_HINT)
    try:
        delta = timedelta(**{_UNITS[unit]: int(amount)})
    except OverflowError:
        raise UsageError(f"time offset {value!r} is out of range", hint=_OFFSET_HINT) from None
    if delta > MAX_OFFSET:
        raise UsageError(f"time offset {value!r} is out of range", hint=_OFFSET_HINT)
    return -delta if sign == "-" else delta


def parse_time(text: str, clock: Clock | None = None) -> datetime:
    """Parse RFC 3339 (``2026-11-28T10:00:00Z``) or an offset from now (``-2h``, ``-30d``).

    Naive times are refused: an incident clock must never guess a time zone. Offsets
    beyond a century and times outside the calendar are usage errors, never overflows.
    """
    value = text.strip()
    delta = parse_offset(value)
    if delta is not None:
        try:
            return (clock or SystemClock()).now() + delta
        except OverflowError:
            raise UsageError(f"time offset {value!r} is out of range", hint=_OFFSET_HINT) from None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"invalid time {value!r}", hint="use RFC 3339 like 2026-11-28T10:00:00Z or -2h") from None
    if parsed.tzinfo is None:
        raise UsageError(f"time {value!r} has no time zone", hint="add Z or an offset like +08:00")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise UsageError(f"time {value!r} is out of range", hint="use a time between years 1 and 9999") from None


def as_utc(at: datetime) -> datetime:
    """A stored datetime as aware UTC (SQLite hands back naive values, which are UTC)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def format_time(at: datetime) -> str:
    """RFC 3339 UTC with a ``Z`` suffix and microseconds only when present."""
    at = at.astimezone(UTC)
    text = at.isoformat(timespec="microseconds" if at.microsecond else "seconds")
    return text.replace("+00:00", "Z")


_SPAN = re.compile(r"^([0-9]{1,9})\s*([smhd])$")
_SPAN_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_span(text: str, what: str = "duration") -> timedelta:
    """A positive duration written ``30s``, ``15m``, ``12h`` or ``90d`` (SPEC §8); UsageError otherwise."""
    match = _SPAN.match(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise UsageError(f"invalid {what} {text!r}", hint="a positive number with s, m, h or d, like 15m")
    seconds = int(match.group(1)) * _SPAN_UNITS[match.group(2)]
    if seconds > MAX_OFFSET.total_seconds():
        raise UsageError(f"{what} {text!r} is out of range", hint="at most 100 years")
    return timedelta(seconds=seconds)


def format_span(span: timedelta) -> str:
    """The shortest exact ``parse_span`` form of ``span`` (``900s`` → ``15m``)."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
