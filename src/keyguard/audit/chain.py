"""Canonical encoding and hashing of audit events (SPEC §5).

``hash`` = SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8) of
the event without ``hash``; ``prev_hash`` links each event to the one before.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from keyguard.errors import ChainIntegrityError

GENESIS = "0" * 64
FIELDS = (
    "id",
    "ts",
    "actor",
    "source_ip",
    "user_agent",
    "op",
    "key",
    "version",
    "result",
    "reason",
    "request_id",
    "prev_hash",
)


# orjson writes strings, integers and null byte for byte as the reference encoding
# below does (sorted ASCII keys, the same escapes) at a fraction of the CPU; any other
# type, or what orjson refuses (integers beyond 64 bits, lone surrogates), takes the
# reference path, so the bytes hashed never change.
_ORJSON_TYPES = frozenset({str, int, type(None)})


def canonical(event: Mapping[str, Any]) -> bytes:
    """Canonical JSON of ``event`` without ``hash``."""
    body = {name: event.get(name) for name in FIELDS}
    if all(type(value) in _ORJSON_TYPES for value in body.values()):
        try:
            return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: Mapping[str, Any]) -> str:
    """SHA-256 hex of the canonical form."""
    return hashlib.sha256(canonical(event)).hexdigest()


# The canonical JSON of an event before the chain links it, cut where the values of
# ``id`` and ``prev_hash`` go: both are known only under the chain's write lock, and
# encoding the rest there made the lock's critical section longer for every writer.
_ID_SLOT = b'"id":0,'
_PREV_SLOT = b'"prev_hash":""'


def canonical_parts(event: Mapping[str, Any]) -> tuple[bytes, bytes, bytes] | None:
    """``canonical(event)`` as (before id, between id and prev_hash, after prev_hash), or None.

    The keys are sorted, so the slot of ``id`` follows only ``actor`` and the slot of
    ``prev_hash`` only ``actor``, ``id``, ``key`` and ``op``; every string value is
    JSON-escaped, so no value can contain a slot's unescaped quotes. None when the
    event takes the reference encoding (:func:`canonical`): hash it whole then.
    """
    body = {name: event.get(name) for name in FIELDS}
    body["id"] = 0
    body["prev_hash"] = ""
    if not all(type(value) in _ORJSON_TYPES for value in body.values()):
        return None
    try:
        data = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return None
    at_id = data.index(_ID_SLOT) + len(b'"id":')
    at_prev = data.index(_PREV_SLOT, at_id) + len(b'"prev_hash":')
    return data[:at_id], data[at_id + 1 : at_prev], data[at_prev + 2 :]


def linked_hash(parts: tuple[bytes, bytes, bytes] | None, event: Mapping[str, Any]) -> str:
    """:func:`event_hash` of ``event`` (its ``id`` and ``prev_hash`` set), from its :func:`canonical_parts`."""
    event_id, prev_hash = event["id"], event["prev_hash"]
    if parts is not None and type(event_id) is int and type(prev_hash) is str:
        try:
            before, between, after = parts
            data = before + orjson.dumps(event_id) + between + orjson.dumps(prev_hash) + after
            return hashlib.sha256(data).hexdigest()
        except orjson.JSONEncodeError:
            pass
    return event_hash(event)


def checkpoint(key: bytes, last_id: int, last_hash: str, counter: int = 0) -> str:
    """HMAC of the head under a vault-internal key: rewriting the whole chain is detected too.

    ``counter`` grows by one with every signed head, so an older head (a database
    restored from a backup) never carries a newer head's checkpoint. Counter 0 is
    the first format, written before heads were counted (``last_id:last_hash``).
    """
    if counter == 0:
        message = f"{last_id}:{last_hash}"
    else:
        message = f"kg-audit-head:v2:{counter}:{last_id}:{last_id}:{last_hash}"  # counter, events, id, hash
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def head_problem(key: bytes | None, last_id: int, last_hash: str, counter: int, mark: str | None) -> str | None:
    """Why the head ``(last_id, last_hash, counter)`` is not the one the vault signed, or None.

    A blank checkpoint passes only on an empty log (nothing was ever signed); on a
    log that has events it is a forgery: whoever rewrote the chain could not sign it.
    Without ``key`` nothing can be checked (None).
    """
    if key is None:
        return None
    if not mark:
        if last_id == 0 and last_hash == GENESIS:
            return None
        return "the head's checkpoint is missing: the chain was rewritten or the checkpoint blanked"
    if not hmac.compare_digest(checkpoint(key, last_id, last_hash, counter), mark):
        return "the head's checkpoint does not match: the chain was rewritten"
    return None


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a successful verification."""

    events: int
    last_id: int
    last_hash: str
    checkpoint_checked: bool


def verify_events(
    events: Iterable[Mapping[str, Any]],
    head_last_id: int,
    head_last_hash: str,
) -> VerifyResult:
    """Walk the chain; raise :class:`ChainIntegrityError` naming the first bad event.

    Detects modified events (hash mismatch), deleted or reordered ones (id gap or
    ``prev_hash`` mismatch), inserted ones (id or link mismatch) and truncation
    (the head points past the last event).
    """
    expected_prev = GENESIS
    expected_id = 1
    count = 0
    last_id = 0
    for event in events:
        event_id = int(event["id"])
        if event_id != expected_id:
            raise ChainIntegrityError(min(event_id, expected_id), f"expected event {expected_id}, found {event_id}")
        if event["prev_hash"] != expected_prev:
            raise ChainIntegrityError(event_id, "prev_hash does not link to the previous event")
        if not hmac.compare_digest(event_hash(event), str(event["hash"])):
            raise ChainIntegrityError(event_id, "content does not match its hash")
        expected_prev = str(event["hash"])
        expected_id += 1
        last_id = event_id
        count += 1
    if last_id != head_last_id or expected_prev != head_last_hash:
        raise ChainIntegrityError(last_id + 1, f"the log ends at {last_id} but the head says {head_last_id}")
    return VerifyResult(count, last_id, expected_prev, False)
