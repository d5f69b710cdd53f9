"""Key references as typed: ``NAME`` or ``NAME@VERSION``, with the version bounded like the store's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyguard.config import MAX_VERSION
from keyguard.errors import UsageError
from keyguard.vault.refs import parse_ref


def test_names_and_versions() -> None:
    assert parse_ref("pay") == ("pay", None)
    assert parse_ref(" pay@3 ") == ("pay", 3)
    assert parse_ref(f"pay@{MAX_VERSION}") == ("pay", MAX_VERSION)


@pytest.mark.parametrize(
    "text", ["pay@", "pay@0", "pay@-1", "pay@1.5", "pay@١", "pay@²", f"pay@{MAX_VERSION + 1}", "pay@" + "9" * 5000]
)
def test_bad_versions_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_ref(text)
    assert len(str(caught.value)) < 200  # the message quotes a bounded prefix only


@given(st.integers(min_value=1, max_value=MAX_VERSION))
def test_every_storable_version_round_trips(version: int) -> None:
    assert parse_ref(f"k@{version}") == ("k", version)
