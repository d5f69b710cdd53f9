"""Fast, fixed-width RFC 3339 timestamps (``YYYY-MM-DDTHH:MM:SS.ffffffZ``).

The store keeps times as fixed-width text so that string order is time order on
SQLite and PostgreSQL alike; the detectors work on epoch seconds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

_FAST = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d+))?(?:Z|z|\+00:?00)?$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TimeFormatError(ValueError):
    """A timestamp could not be understood."""


def normalize_ts(text: str) -> str:
    """Return ``text`` as fixed-width UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.

    Accepts RFC 3339 with any fraction length (nanoseconds are truncated) and any
    offset; a time without a zone is taken as UTC only when it has no offset at all
    and ends in ``Z`` or nothing (log formats that are UTC by definition).
    """
    if len(text) == 20 and text[19] == "Z" and text[10] == "T" and text[4] == "-":
        _check(text[0:10], text[11:19])  # the common CloudTrail form, 2026-01-05T10:00:00Z
        return text[:19] + ".000000Z"
    match = _FAST.match(text)
    if match:
        day, clock, frac = match.groups()
        _check(day, clock)
        frac = ((frac or "") + "000000")[:6]
        return f"{day}T{clock}.{frac}Z"
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TimeFormatError(f"invalid timestamp {text[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return format_ts(parsed)


def _check(day: str, clock: str) -> None:
    try:
        _day_epoch(day)
        valid = int(clock[0:2]) < 24 and int(clock[3:5]) < 60 and int(clock[6:8]) < 61
    except ValueError:
        valid = False
    if not valid:
        raise TimeFormatError(f"invalid timestamp {day}T{clock}")


def format_ts(at: datetime) -> str:
    """Fixed-width text of an aware datetime."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@lru_cache(maxsize=4096)
def _day_epoch(day: str) -> int:
    y, m, d = int(day[0:4]), int(day[5:7]), int(day[8:10])
    return int((datetime(y, m, d, tzinfo=UTC) - _EPOCH).total_seconds())


def ts_epoch(ts: str) -> float:
    """Epoch seconds of a fixed-width timestamp (fast path, cached per day)."""
    return (
        _day_epoch(ts[0:10]) + int(ts[11:13]) * 3600 + int(ts[14:16]) * 60 + int(ts[17:19]) + int(ts[20:26]) / 1_000_000
    )


def epoch_ts(epoch: float) -> str:
    """Fixed-width text of epoch seconds."""
    return format_ts(_EPOCH + timedelta(seconds=epoch))


def parse_ts(ts: str) -> datetime:
    """Aware datetime of a fixed-width timestamp."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))
