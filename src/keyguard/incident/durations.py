"""ISO 8601 durations (``PT1H``, ``P3D``, ``P1M``) and calendar arithmetic on UTC datetimes."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from keyguard.errors import DataFileError

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


@dataclass(frozen=True)
class Duration:
    """A parsed ISO 8601 duration: whole calendar months plus an exact time span."""

    text: str
    months: int
    span: timedelta

    @property
    def is_exact(self) -> bool:
        """True when the duration has no calendar months (``PT72H``, ``P30D``)."""
        return self.months == 0

    def after(self, start: datetime) -> datetime:
        """The instant this duration after ``start`` (months first, then the exact span)."""
        return add_months(start, self.months) + self.span

    def sort_key(self) -> timedelta:
        """An approximate length for ordering (a month counts as 31 days)."""
        return timedelta(days=31 * self.months) + self.span


def parse_duration(text: str) -> Duration:
    """Parse an ISO 8601 duration; raise :class:`DataFileError` when it is not one."""
    match = _DURATION.match(text.strip())
    if not match:
        raise DataFileError(f"invalid ISO 8601 duration {text!r}", hint="use forms like PT1H, P3D, P1M")
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    span = timedelta(
        weeks=parts.get("weeks", 0),
        days=parts.get("days", 0),
        hours=parts.get("hours", 0),
        minutes=parts.get("minutes", 0),
        seconds=parts.get("seconds", 0),
    )
    return Duration(text=text.strip(), months=12 * parts.get("years", 0) + parts.get("months", 0), span=span)


def add_months(start: datetime, months: int) -> datetime:
    """Add calendar months, clamping the day to a shorter month's end (31 Jan + 1M = 28 Feb)."""
    if months == 0:
        return start
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)
