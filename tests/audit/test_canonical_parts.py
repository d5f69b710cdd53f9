"""The chain's hash from the parts encoded before the write lock equals the whole event's hash."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from keyguard.audit.chain import FIELDS, canonical_parts, event_hash, linked_hash

# text that looks like the slots the parts are cut at, quotes, escapes and non-ASCII
_TRICKY = st.sampled_from(['"id":0,', '"prev_hash":""', '\\"', '"', "\\", "é", "\u2028", "\x00", "kg", ""])
_TEXT = st.lists(st.one_of(_TRICKY, st.text(max_size=8)), max_size=4).map("".join)
_VALUE = st.one_of(st.none(), _TEXT, st.integers(min_value=-(2**63), max_value=2**63 - 1))


@given(
    st.fixed_dictionaries({name: _VALUE for name in FIELDS if name not in ("id", "prev_hash")}),
    st.integers(min_value=1, max_value=2**63 - 1),
    st.one_of(st.text(max_size=70), st.text("0123456789abcdef", min_size=64, max_size=64)),
)
def test_linked_hash_is_the_event_hash(event: dict[str, Any], event_id: int, prev_hash: str) -> None:
    parts = canonical_parts(event)
    linked = {**event, "id": event_id, "prev_hash": prev_hash}
    assert linked_hash(parts, linked) == event_hash(linked)


def test_an_event_the_fast_encoding_refuses_takes_the_reference_path() -> None:
    event: dict[str, Any] = dict.fromkeys(FIELDS)
    event["version"] = 2**70  # beyond 64 bits: orjson refuses it, the reference encodes it
    assert canonical_parts(event) is None
    linked = {**event, "id": 1, "prev_hash": "0" * 64}
    assert linked_hash(None, linked) == event_hash(linked)
    event["actor"] = 1.5  # not a type of the fast path
    assert canonical_parts(event) is None
