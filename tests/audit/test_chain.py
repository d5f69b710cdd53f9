from __future__ import annotations

import asyncio
import json
import multiprocessing
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from keyguard.audit.chain import FIELDS, GENESIS, canonical, event_hash, verify_events
from keyguard.audit.log import AuditLog, EventDraft, loop_appends
from keyguard.audit.reading import iter_events, verify_log
from keyguard.errors import ChainIntegrityError
from keyguard.store.db import create_db_engine, migrate


def _events(n: int) -> list[dict]:
    events, prev = [], GENESIS
    for i in range(1, n + 1):
        e = {
            "id": i,
            "ts": f"2026-01-01T00:00:{i:02d}.000000Z",
            "actor": "a",
            "source_ip": None,
            "user_agent": None,
            "op": "encrypt",
            "key": "k",
            "version": 1,
            "result": "ok",
            "reason": None,
            "request_id": None,
            "prev_hash": prev,
        }
        e["hash"] = prev = event_hash(e)
        events.append(e)
    return events


def test_intact_chain_verifies() -> None:
    events = _events(5)
    assert verify_events(events, 5, events[-1]["hash"]).events == 5


@settings(max_examples=60)
@given(n=st.integers(2, 12), data=st.data())
def test_any_tampering_is_found(n: int, data: st.DataObject) -> None:
    events = _events(n)
    head = (n, events[-1]["hash"])
    kind = data.draw(st.sampled_from(["modify", "delete", "swap", "insert", "truncate"]))
    i = data.draw(st.integers(0, n - 1))
    if kind == "modify":
        field = data.draw(st.sampled_from(["actor", "op", "key", "result", "ts", "version"]))
        events[i][field] = "tampered" if field != "version" else 99
    elif kind == "delete":
        del events[i]
    elif kind == "swap":
        j = (i + 1) % n
        events[i], events[j] = events[j], events[i]
    elif kind == "insert":
        forged = dict(events[i])
        forged["actor"] = "mallory"
        forged["hash"] = event_hash(forged)
        events.insert(i, forged)
    else:
        events = events[: max(0, i)] if i < n else events
        if len(events) == n:
            events = events[:-1]
    with pytest.raises(ChainIntegrityError):
        verify_events(events, *head)


def test_names_first_bad_event() -> None:
    events = _events(6)
    events[3]["actor"] = "mallory"
    with pytest.raises(ChainIntegrityError) as info:
        verify_events(events, 6, events[-1]["hash"])
    assert info.value.event_id == 4


def test_database_tampering_found(vault, admin) -> None:
    vault.create_key(admin, "k", "encrypt")
    for _ in range(5):
        vault.encrypt(admin, "k", b"x")
    assert verify_log(vault.engine, vault.checkpoint_key)["events"] == 6
    with vault.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = 3"))
    with pytest.raises(ChainIntegrityError) as info:
        verify_log(vault.engine, vault.checkpoint_key)
    assert info.value.event_id == 3


def test_full_rewrite_caught_by_checkpoint(vault, admin) -> None:
    vault.create_key(admin, "k", "encrypt")
    vault.encrypt(admin, "k", b"x")
    events = list(iter_events(vault.engine))
    prev = GENESIS
    with vault.engine.begin() as conn:
        for e in events:
            e["actor"] = "mallory"
            e["prev_hash"] = prev
            e["hash"] = prev = event_hash(e)
            conn.execute(
                text("UPDATE audit_events SET actor=:a, prev_hash=:p, hash=:h WHERE id=:i"),
                {"a": e["actor"], "p": e["prev_hash"], "h": e["hash"], "i": e["id"]},
            )
        conn.execute(text("UPDATE audit_head SET last_hash=:h"), {"h": prev})
    verify_log(vault.engine)  # the bare chain is consistent …
    with pytest.raises(ChainIntegrityError, match="checkpoint"):
        verify_log(vault.engine, vault.checkpoint_key)  # … but the keyed checkpoint is not


def test_concurrent_threads_keep_one_chain(db_url: str) -> None:
    engine = create_db_engine(db_url)
    migrate(engine)
    log = AuditLog(engine)

    def work() -> None:
        for _ in range(50):
            log.append(EventDraft(actor="t", op="encrypt", result="ok"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert verify_log(engine)["events"] == 400
    engine.dispose()


def _writer(url: str, n: int) -> None:
    engine = create_db_engine(url)
    migrate(engine)
    log = AuditLog(engine)
    for _ in range(n):
        log.append(EventDraft(actor="proc", op="encrypt", result="ok"))


def test_concurrent_processes_keep_one_chain(db_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db_url, 60)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    engine = create_db_engine(db_url)
    assert verify_log(engine)["events"] == 180
    engine.dispose()


def test_fail_closed(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'k.db'}")
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_events"))
    from keyguard.errors import AuditWriteError

    with pytest.raises(AuditWriteError):
        AuditLog(engine).append(EventDraft(actor="a", op="encrypt", result="ok"))


def test_loop_appends_resolve_on_their_loop(db_url: str) -> None:
    engine = create_db_engine(db_url)
    migrate(engine)
    log = AuditLog(engine)

    async def caller(actor: str) -> list[dict]:
        with loop_appends() as waiters:
            log.append(EventDraft(actor=actor, op="encrypt", result="ok"))
            log.append(EventDraft(actor=actor, op="decrypt", result="ok"))
        assert len(waiters) == 2
        return list(await asyncio.gather(*waiters))

    async def main() -> list[list[dict]]:
        return list(await asyncio.gather(*(caller(f"c{i}") for i in range(8))))

    records = [r for rs in asyncio.run(main()) for r in rs]
    assert sorted(r["id"] for r in records) == list(range(1, 17))
    assert verify_log(engine)["events"] == 16
    engine.dispose()


def test_loop_appends_fail_closed(tmp_path: Path) -> None:
    from keyguard.errors import AuditWriteError

    engine = create_db_engine(f"sqlite:///{tmp_path / 'k.db'}")
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_events"))
    log = AuditLog(engine)

    async def main() -> None:
        with loop_appends() as waiters:
            log.append(EventDraft(actor="a", op="encrypt", result="ok"))
        with pytest.raises(AuditWriteError):
            await waiters[0]

    asyncio.run(main())


def _reference(event: dict) -> bytes:
    body = {name: event.get(name) for name in FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


_VALUES = st.one_of(
    st.none(),
    st.text(),
    st.text(alphabet=st.characters(max_codepoint=0x9F)),  # control characters, quotes, backslashes, DEL
    st.integers(),  # beyond 64 bits too
    st.booleans(),
)


@settings(max_examples=300)
@given(st.fixed_dictionaries(dict.fromkeys(FIELDS, _VALUES)))
def test_canonical_is_the_reference_encoding(event: dict) -> None:
    try:
        expected = _reference(event)
    except UnicodeEncodeError:  # lone surrogates: no canonical form either way
        with pytest.raises(UnicodeEncodeError):
            canonical(event)
        return
    assert canonical(event) == expected


def test_canonical_is_the_reference_encoding_for_every_character() -> None:
    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    event = {"actor": text, "reason": '"\\\n\x00\x7f', "id": 2**64, "version": None}
    assert canonical(event) == _reference(event)
    event["id"] = 7
    assert canonical(event) == _reference(event)
