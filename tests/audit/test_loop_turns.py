"""Deferred appends made on an event loop reach the writer once per loop turn, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

from keyguard.audit.log import AuditLog, EventDraft, loop_appends
from keyguard.audit.reading import iter_events, verify_log
from keyguard.store.db import create_db_engine, migrate


def test_one_turns_events_are_one_batch_in_order(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'kg.db'}")
    migrate(engine)
    log = AuditLog(engine)
    batches: list[int] = []
    write = log._write
    log._write = lambda batch: (batches.append(len(batch)), write(batch))[1]  # type: ignore[method-assign]

    async def main() -> list[dict[str, object]]:
        with loop_appends() as waiters:
            for n in range(5):
                log.append(EventDraft(actor="t", op=f"op{n}", result="ok"))
            assert not log._queue  # kept until the end of the turn: nothing queued, no writer woken yet
        return list(await asyncio.gather(*waiters))

    records = asyncio.run(main())
    log.append(EventDraft(actor="t", op="after", result="ok"))
    assert batches == [5, 1]
    assert [r["op"] for r in records] == [f"op{n}" for n in range(5)]
    assert [e["op"] for e in iter_events(engine)][-6:] == [*(f"op{n}" for n in range(5)), "after"]
    assert verify_log(engine)["events"] >= 6
    log.close()
