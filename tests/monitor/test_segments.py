"""The columnar store and the DuckDB CloudTrail path, on SQLite and PostgreSQL.

The DuckDB path must store exactly what the Python importer produces: same
fields, same line numbers, same rejections, same content hashes (so a file
imported one way is all duplicates the other way).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from keyguard.monitor.batches import ImportStats
from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.importers import ImportOptions, Rejected, cloudtrail_sql
from keyguard.monitor.ingest import import_target, parse_target
from keyguard.monitor.segments import MERGE_AT, count_events
from keyguard.monitor.store import import_stream, iter_imported, store_events
from keyguard.store.db import create_db_engine, migrate
from keyguard.store.monitor_tables import Alert, EventSegment


def _record(i: int, **over: object) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::1:user/u{i % 3}", "accessKeyId": f"AKIA{i % 4:016d}"},
        "eventTime": f"2026-01-05T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
        "eventSource": "kms.amazonaws.com",
        "eventName": "Decrypt",
        "sourceIPAddress": f"203.0.113.{i % 5}",
        "userAgent": "aws-sdk-go/1.44",
        "requestParameters": {"keyId": f"arn:aws:kms:eu-west-1:1:key/k-{i % 2}"},
        "requestID": f"req-{i}",
        "eventID": f"evt-{i}",
    }
    record.update(over)
    return record


def _varied() -> list[dict[str, Any]]:
    """Records covering every mapping rule (all valid objects, so DuckDB takes them)."""
    return [
        _record(0),
        _record(1, eventSource="s3.amazonaws.com", eventName="GetObject", requestParameters={"bucketName": "b"}),
        _record(2, errorCode="AccessDenied", errorMessage="User is not authorized"),
        _record(3, errorCode="KMSInvalidStateException", errorMessage=""),
        _record(4, errorCode="ThrottlingException"),
        _record(5, eventName="ReEncrypt", requestParameters={"destinationKeyId": "alias/next"}),
        _record(6, eventName="ListKMSKeys", requestParameters=None, resources=[{"ARN": "arn:aws:kms:x:1:key/r-1"}]),
        _record(7, eventTime="2026-01-05T10:00:07.5+00:00"),
        _record(8, eventTime="2026-01-05T10:00:60Z"),  # a leap second: Python's path accepts it
        _record(9, eventTime="2026-02-30T10:00:00Z"),  # rejected: no such day
        _record(10, eventTime=None),  # rejected: missing
        _record(11, userIdentity={"principalId": "AIDA1"}, sourceIPAddress="", userAgent="ü" * 600),
        _record(12, eventID=None, requestID=None),
        _record(13, userIdentity={}, eventSource="sts.amazonaws.com", eventName="GetCallerIdentity"),
    ]


def _python_import(engine: Engine, target: Path) -> ImportStats:
    return import_stream(engine, parse_target(str(target), "cloudtrail", ImportOptions()))


def _stored(engine: Engine) -> list[dict[str, Any]]:
    return list(iter_imported(engine))


def _same_as_python(engine: Engine, target: Path, tmp_path: Path) -> ImportStats:
    """Import ``target`` through DuckDB into ``engine`` and through Python into a second database."""
    fast = import_target(engine, str(target), "cloudtrail", detect=False)
    other = create_db_engine(f"sqlite:///{tmp_path / 'python.db'}")
    migrate(other)
    slow = _python_import(other, target)
    assert fast.to_json() == slow.to_json()
    assert [(r.source_line, r.reason) for r in fast.rejections] == [(r.source_line, r.reason) for r in slow.rejections]
    assert _stored(engine) == _stored(other)
    again = _python_import(engine, target)  # the same content hashes: nothing new
    assert (again.imported, again.duplicates) == (0, fast.imported)
    other.dispose()
    return fast


def test_lines_form_matches_the_python_importer(engine: Engine, tmp_path: Path) -> None:
    target = tmp_path / "trail.jsonl"
    target.write_text("\n".join(json.dumps(r) for r in _varied()) + "\n")
    stats = _same_as_python(engine, target, tmp_path)
    assert stats.rejected == 2 and [r.source_line for r in stats.rejections] == [10, 11]
    by_line = {r["source_line"]: r for r in _stored(engine)}
    assert by_line[2]["key"] == "AKIA0000000000000001" and by_line[2]["op"] == "get-object"
    assert by_line[6]["key"] == "alias/next" and by_line[6]["op"] == "rewrap"
    assert by_line[7]["key"] == "arn:aws:kms:x:1:key/r-1" and by_line[7]["op"] == "list-k-m-s-keys"
    assert [by_line[n]["result"] for n in (3, 4, 5)] == ["denied", "denied", "error"]
    assert by_line[4]["reason"] == "KMSInvalidStateException"
    assert by_line[8]["ts"] == "2026-01-05T10:00:07.500000Z"
    assert by_line[12]["actor"] == "AIDA1" and by_line[12]["source_ip"] is None
    assert len(by_line[12]["user_agent"]) == 512


def test_records_form_gzip_and_plain(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "trail"
    folder.mkdir()
    (folder / "a.json.gz").write_bytes(gzip.compress(json.dumps({"Records": _varied()}, indent=1).encode()))
    (folder / "b.json").write_text(json.dumps({"Records": [_record(i) for i in range(20, 25)]}))
    stats = _same_as_python(engine, folder, tmp_path)
    assert (stats.imported, stats.rejected) == (17, 2)


def test_chunks_keep_line_numbers_and_bad_chunks_fall_back(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cloudtrail_sql, "CHUNK_BYTES", 2048)  # a few records per chunk
    lines = [json.dumps(_record(i)) for i in range(60)]
    lines[17] = "{not json"
    lines[33] = ""
    lines[40] = "[1, 2]"
    lines[51] = json.dumps(_record(51)) + " " + json.dumps(_record(52))
    target = tmp_path / "trail.jsonl"
    target.write_text("\n".join(lines))  # no newline at the end
    stats = _same_as_python(engine, target, tmp_path)
    assert [r.source_line for r in stats.rejections] == [18, 41, 52]
    assert stats.read == 59 and stats.imported == 56
    assert [r["source_line"] for r in _stored(engine)] == [n for n in range(1, 61) if n not in (18, 34, 41, 52)]


def test_clean_chunks_go_straight_to_parquet(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clean chunks skip the batch table (its mapping is never run) and store what Python would."""
    monkeypatch.setattr(cloudtrail_sql, "CHUNK_BYTES", 4096)

    def no_table(*args: object, **kwargs: object) -> None:
        raise AssertionError("a clean chunk went through the batch table")

    monkeypatch.setattr(cloudtrail_sql, "_load", no_table)
    records = [_record(i) for i in range(40)]
    records += [_record(i, errorCode="AccessDenied", errorMessage="no") for i in range(40, 45)]
    records += [_record(i, eventSource="s3.amazonaws.com", eventName="PutObject", eventID=None) for i in range(45, 50)]
    target = tmp_path / "trail.jsonl"
    target.write_text("".join(json.dumps(r) + "\n" for r in records))
    stats = _same_as_python(engine, target, tmp_path)
    assert (stats.imported, stats.rejected) == (50, 0)
    assert [r["source_line"] for r in _stored(engine)] == list(range(1, 51))
    with engine.connect() as conn:
        assert set(conn.execute(select(EventSegment.source_file)).scalars()) == {str(target)}
    assert import_target(engine, str(target), "cloudtrail", detect=False).duplicates == 50


def test_grown_file_and_concurrent_style_reimport_store_nothing_twice(engine: Engine, tmp_path: Path) -> None:
    target = tmp_path / "trail.jsonl"
    target.write_text("".join(json.dumps(_record(i)) + "\n" for i in range(50)))
    assert import_target(engine, str(target), "cloudtrail", detect=False).imported == 50
    with target.open("a") as handle:
        handle.write("".join(json.dumps(_record(i)) + "\n" for i in range(50, 80)))
    stats = import_target(engine, str(target), "cloudtrail", detect=False)
    assert (stats.imported, stats.duplicates) == (30, 50)
    assert count_events(engine) == 80


def test_small_segments_are_merged_in_order(engine: Engine) -> None:
    def event(i: int) -> MonitorEvent:
        return MonitorEvent(
            ts=f"2026-01-05T10:00:{i:02d}.000000Z", op="decrypt", result="ok", key=f"k{i % 2}",
            actor="svc", source="jsonl", source_line=i + 1, source_file="watched.log",
        )  # fmt: skip

    for i in range(MERGE_AT + 2):
        assert len(store_events(engine, [event(i)])) == 1
    assert store_events(engine, [event(3)]) == []  # still a duplicate after the merge
    with engine.connect() as conn:
        segments = conn.execute(select(func.count()).select_from(EventSegment)).scalar_one()
    assert segments == 3  # the merged one and the two stored after it
    assert [r["source_line"] for r in _stored(engine)] == list(range(1, MERGE_AT + 3))
    assert [r["source_line"] for r in iter_imported(engine, key="k1")] == list(range(2, MERGE_AT + 3, 2))


def test_migration_moves_rows_into_segments(db_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from keyguard.store.db import MIGRATIONS_DIR

    engine = create_db_engine(db_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
        conn.execute(
            text(
                "INSERT INTO imported_events (content_hash, ts, actor, op, key, result, source, source_line) "
                "VALUES (:h, :ts, 'svc', 'decrypt', :key, 'ok', :source, :line)"
            ),
            [
                {"h": f"h{i}", "ts": f"2026-01-05T10:00:{i:02d}.000000Z", "key": "pay", "source": s, "line": i}
                for i, s in enumerate(["jsonl", "cloudtrail", "jsonl"], 1)
            ],
        )
    migrate(engine)
    records = _stored(engine)
    assert [(r["source"], r["source_line"]) for r in records] == [("cloudtrail", 2), ("jsonl", 1), ("jsonl", 3)]
    with engine.connect() as conn:
        assert "imported_events" not in conn.dialect.get_table_names(conn)
    engine.dispose()


def test_rejected_only_input_reports_every_line(engine: Engine, tmp_path: Path) -> None:
    target = tmp_path / "bad.jsonl"
    target.write_text("nope\n{}\n")
    stats = import_target(engine, str(target), "cloudtrail", detect=False)
    assert stats.to_json() == {"read": 2, "imported": 0, "duplicates": 0, "rejected": 2}
    assert all(isinstance(r, Rejected) for r in stats.rejections)


def _alerts(engine: Engine) -> list[tuple[str, str | None, int]]:
    with engine.connect() as conn:
        rows = conn.execute(select(Alert.rule, Alert.key, Alert.count).order_by(Alert.id)).all()
    return [(str(r), k, int(c)) for r, k, c in rows]


def _noisy_trail(tmp_path: Path, denied: int) -> Path:
    """400 calls from home, 20 from a new address and user agent, then ``denied`` refusals."""
    records = [_record(i, sourceIPAddress="203.0.113.1") for i in range(400)]
    records += [_record(i, sourceIPAddress="198.51.100.7", userAgent="curl/8") for i in range(400, 420)]
    records += [_record(i, errorCode="AccessDenied") for i in range(420, 420 + denied)]
    target = tmp_path / "trail.jsonl"
    target.write_text("".join(json.dumps(r) + "\n" for r in records))
    return target


@pytest.mark.slow
def test_detection_process_matches_detection_in_process(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Big imports detect in a second process: same alerts, same saved detector state."""
    from keyguard.monitor import ingest

    target = _noisy_trail(tmp_path, denied=20)
    other = create_db_engine(f"sqlite:///{tmp_path / 'thread.db'}")
    migrate(other)
    in_thread = import_target(other, str(target), "cloudtrail")
    monkeypatch.setattr(ingest, "DETECT_PROCESS_BYTES", 0)
    in_child = import_target(engine, str(target), "cloudtrail")
    assert in_child.alerts == in_thread.alerts > 0
    assert _alerts(engine) == _alerts(other)
    assert _detector_state(engine) == _detector_state(other)
    again = import_target(engine, str(target), "cloudtrail")
    assert (again.imported, again.alerts) == (0, 0)
    other.dispose()


_FORKED_IMPORT = """
import sys, threading
from keyguard.monitor import detect_process, ingest
from keyguard.monitor.importers import cloudtrail_sql
from keyguard.store.db import create_db_engine

assert threading.active_count() == 1  # so the detection process is forked, not started afresh
forked = detect_process._fork
calls = []
detect_process._fork = lambda: calls.append(1) or forked()
ingest.DETECT_PROCESS_BYTES = 0
cloudtrail_sql.CHUNK_BYTES = 4096  # many segments: several detection groups
stats = ingest.import_target(create_db_engine(sys.argv[1]), sys.argv[2], "cloudtrail")
print(stats.alerts, len(calls))
"""


@pytest.mark.slow
def test_forked_detection_process_matches_detection_in_process(db_url: str, tmp_path: Path) -> None:
    """A single-threaded importer forks its detection process: same alerts and detector state."""
    import subprocess
    import sys

    target = _noisy_trail(tmp_path, denied=40)
    reference = create_db_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    migrate(reference)
    expected = import_target(reference, str(target), "cloudtrail")
    engine = create_db_engine(db_url)
    migrate(engine)
    done = subprocess.run([sys.executable, "-c", _FORKED_IMPORT, db_url, str(target)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(expected.alerts), "1"]
    assert _alerts(engine) == _alerts(reference) and expected.alerts > 0
    assert _detector_state(engine) == _detector_state(reference)
    engine.dispose()
    reference.dispose()


_SLOW_IMPORT = """
import sys, time
from keyguard.monitor import pipeline
from keyguard.monitor.importers import cloudtrail_sql
from keyguard.monitor.ingest import import_target
from keyguard.store.db import create_db_engine

cloudtrail_sql.CHUNK_BYTES = 4096
store = pipeline.store_batch

def slow(*args, **kwargs):
    time.sleep(0.3)
    return store(*args, **kwargs)

pipeline.store_batch = slow
import_target(create_db_engine(sys.argv[1]), sys.argv[2], "cloudtrail")
"""


@pytest.mark.slow
@pytest.mark.parametrize("resume_in", ["thread", "process"])
def test_import_killed_midway_loses_no_alert(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resume_in: str
) -> None:
    """kill -9 while batches are stored: the next import detects them first, and nothing is lost or doubled."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from keyguard.monitor import ingest

    records = []
    for block in range(6):  # a burst of refusals in every part of the file, an hour apart
        for i in range(100):
            at = f"2026-01-05T{10 + block:02d}:{i // 60:02d}:{i % 60:02d}Z"
            refused = {"errorCode": "AccessDenied"} if i >= 80 else {}
            records.append(_record(block * 100 + i, eventTime=at, **refused))
    target = tmp_path / "trail.jsonl"
    target.write_text("".join(json.dumps(r) + "\n" for r in records))
    reference = create_db_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    migrate(reference)
    expected = import_target(reference, str(target), "cloudtrail")
    assert expected.alerts >= 3

    engine = create_db_engine(db_url)
    migrate(engine)
    child = subprocess.Popen([sys.executable, "-c", _SLOW_IMPORT, db_url, str(target)])
    deadline = time.monotonic() + 60
    while count_events(engine) < 200 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    assert child.poll() is None, "the import finished before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    stored = count_events(engine)
    assert 0 < stored < len(records)

    if resume_in == "process":
        monkeypatch.setattr(ingest, "DETECT_PROCESS_BYTES", 0)
    resumed = import_target(engine, str(target), "cloudtrail")
    assert resumed.imported + stored == len(records) and resumed.duplicates == stored
    assert _alerts(engine) == _alerts(reference)
    assert _detector_state(engine) == _detector_state(reference)
    engine.dispose()
    reference.dispose()


def _detector_state(engine: Engine) -> Any:
    from keyguard.monitor.detector_state import DETECTOR_STATE
    from keyguard.monitor.store import get_state

    return get_state(engine, DETECTOR_STATE)
