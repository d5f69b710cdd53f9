"""The SQLite audit writer keeps one connection and one lock descriptor per process, and drops them when it must."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from keyguard.audit.log import AuditLog, EventDraft
from keyguard.audit.reading import iter_events, verify_log
from keyguard.errors import AuditWriteError
from keyguard.store.db import create_db_engine, migrate


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'k.db'}")
    migrate(engine)
    return AuditLog(engine)


def _append(log: AuditLog, n: int = 1) -> None:
    for _ in range(n):
        log.append(EventDraft(actor="a", op="auth", result="denied"))  # no last-used time: the plain path


def test_one_connection_and_descriptor_serve_every_batch(log: AuditLog) -> None:
    _append(log)
    raw, fd = log._raw, log._fd
    assert raw is not None and fd is not None
    _append(log, 3)
    assert log._raw is raw and log._fd == fd
    log.close()
    with pytest.raises(OSError):
        os.fstat(fd)  # closed with the log
    _append(log)  # a closed log opens them again when it is used again
    assert verify_log(log._engine)["events"] == 5
    log.close()


def test_a_forked_child_opens_its_own(log: AuditLog) -> None:
    _append(log)
    inherited = log._fd
    assert inherited is not None
    log._owner = -1  # as a child process sees it after a fork
    _append(log)
    assert log._fd is not None and log._fd != inherited
    os.fstat(inherited)  # the parent's descriptor was left alone, not closed
    os.close(inherited)
    log.close()


def test_a_failed_batch_drops_the_connection(log: AuditLog, monkeypatch: pytest.MonkeyPatch) -> None:
    _append(log)
    first = log._raw
    original = AuditLog._extend

    def broken(self, cursor, rows):  # type: ignore[no-untyped-def]
        raise OSError("disk gone")

    monkeypatch.setattr(AuditLog, "_extend", broken)
    with pytest.raises(AuditWriteError):
        _append(log)
    assert log._raw is None  # not trusted with the next batch
    monkeypatch.setattr(AuditLog, "_extend", original)
    _append(log)
    assert log._raw is not None and log._raw is not first
    assert [e["id"] for e in iter_events(log._engine)] == [1, 2]
    log.close()
