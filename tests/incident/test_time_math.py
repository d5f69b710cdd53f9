"""ISO 8601 durations and US business days."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from keyguard.errors import DataFileError
from keyguard.incident.business_days import add_business_days, is_business_day, us_federal_holidays
from keyguard.incident.durations import add_months, parse_duration


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("PT1H", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC)),
        ("P3DT12H", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 4, 12, tzinfo=UTC)),
        ("P1M", datetime(2026, 1, 31, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC)),
        ("P1Y", datetime(2028, 2, 29, tzinfo=UTC), datetime(2029, 2, 28, tzinfo=UTC)),
        ("P2W", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 15, tzinfo=UTC)),
    ],
)
def test_durations(text: str, start: datetime, end: datetime) -> None:
    assert parse_duration(text).after(start) == end


@pytest.mark.parametrize("bad", ["", "P", "PT", "1H", "PT1.5H", "P1H"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(DataFileError):
        parse_duration(bad)


def test_add_months_across_year() -> None:
    assert add_months(datetime(2026, 12, 15, tzinfo=UTC), 1) == datetime(2027, 1, 15, tzinfo=UTC)


def test_federal_holidays_2026() -> None:
    assert us_federal_holidays(2026) == {
        date(2026, 1, 1),
        date(2026, 1, 19),
        date(2026, 2, 16),
        date(2026, 5, 25),
        date(2026, 6, 19),
        date(2026, 7, 3),
        date(2026, 9, 7),
        date(2026, 10, 12),
        date(2026, 11, 11),
        date(2026, 11, 26),
        date(2026, 12, 25),
    }


def test_new_year_observed_on_friday_before() -> None:
    # 1 January 2028 is a Saturday: observed Friday 31 December 2027.
    assert date(2027, 12, 31) in us_federal_holidays(2027)
    assert not is_business_day(date(2027, 12, 31))


@pytest.mark.parametrize(
    ("start", "n", "end"),
    [
        (date(2026, 11, 24), 4, date(2026, 12, 1)),  # Thanksgiving skipped
        (date(2026, 11, 28), 4, date(2026, 12, 3)),  # from a Saturday
        (date(2026, 7, 1), 2, date(2026, 7, 6)),  # 3 July observed
    ],
)
def test_add_business_days(start: date, n: int, end: date) -> None:
    assert add_business_days(start, n) == end
