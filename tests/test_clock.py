"""Relative and absolute times as people type them (``--since``, ``--exposed-at``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keyguard.clock import FrozenClock, parse_offset, parse_time
from keyguard.errors import UsageError

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def test_offsets_and_rfc3339() -> None:
    clock = FrozenClock(NOW)
    assert parse_time("-2h", clock) == NOW - timedelta(hours=2)
    assert parse_time("+30d", clock) == NOW + timedelta(days=30)
    assert parse_time("-36500d", clock) == NOW - timedelta(days=36500)
    assert parse_time("2026-11-28T10:00:00+08:00") == datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
    assert parse_offset("2026-11-28T10:00:00Z") is None


@pytest.mark.parametrize(
    "text",
    ["-99999999999h", "-99999999999999999999d", "-1000000000000000000000s", "-40000d", "+999999999w"],
)
def test_absurd_offsets_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="out of range"):
        parse_time(text, FrozenClock(NOW))


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_times_outside_the_calendar_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="out of range"):
        parse_time(text)
