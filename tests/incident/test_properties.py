"""Invariants: the status machine only moves forward; business-day arithmetic."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyguard.errors import ConflictError
from keyguard.incident.business_days import add_business_days, is_business_day
from keyguard.incident.model import Status, check_transition

statuses = st.sampled_from(list(Status))


@given(statuses, statuses)
def test_transitions_only_forward(current: Status, target: Status) -> None:
    if target.rank > current.rank:
        check_transition(current, target)
    else:
        with pytest.raises(ConflictError):
            check_transition(current, target)


@settings(max_examples=200)
@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)), st.integers(1, 30))
def test_add_business_days(start: date, n: int) -> None:
    end = add_business_days(start, n)
    assert is_business_day(end)
    days = [start + timedelta(days=i) for i in range(1, (end - start).days + 1)]
    assert sum(is_business_day(d) for d in days) == n
