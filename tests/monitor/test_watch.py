"""``watch``: backlog, restart without re-alerting or missing, live delivery < 1 s, tail -F, CLI."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select

from keyguard.cli.main import main
from keyguard.monitor.delivery import Dispatcher
from keyguard.monitor.follow import FileCursor, FileFollower
from keyguard.monitor.importers import ImportOptions
from keyguard.monitor.sinks import parse_sink
from keyguard.monitor.timeutil import epoch_ts
from keyguard.monitor.watch import Watcher
from keyguard.store.monitor_tables import Alert
from keyguard.store.tables import AuditEvent

from .receivers import http_receiver

BASE = 1_767_600_000.0


def append_audit(engine: Engine, start_id: int, n: int, *, result: str = "denied", t0: float = BASE) -> None:
    """Write ``n`` audit events (hash fields are placeholders: the chain is not under test)."""
    rows = [
        {
            "id": start_id + i,
            "ts": epoch_ts(t0 + i),
            "actor": "svc",
            "source_ip": "10.0.0.1",
            "user_agent": "app/1",
            "op": "decrypt",
            "key": "pay",
            "version": 1,
            "result": result,
            "reason": "permission denied" if result == "denied" else None,
            "request_id": f"r{start_id + i}",
            "prev_hash": "0" * 64,
            "hash": f"{start_id + i:064d}",
        }
        for i in range(n)
    ]
    with engine.begin() as conn:
        conn.execute(insert(AuditEvent), rows)


def _alerts(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Alert)).scalar_one())


def test_backlog_and_restart(engine: Engine) -> None:
    append_audit(engine, 1, 12)
    first = Watcher(engine).run_once()
    assert (first.events, first.alerts) == (12, 1)
    again = Watcher(engine).run_once()  # restart: nothing new, nothing re-alerted
    assert (again.events, again.alerts) == (0, 0)
    append_audit(engine, 13, 3, t0=BASE + 12)  # same burst continues: grouped, not re-alerted
    later = Watcher(engine).run_once()
    assert (later.events, later.alerts) == (3, 0)
    append_audit(engine, 16, 10, t0=BASE + 3600)  # an hour later: a new burst
    assert Watcher(engine).run_once().alerts == 1
    assert _alerts(engine) == 2


def test_live_alert_reaches_webhook_within_a_second(engine: Engine) -> None:
    with http_receiver() as rx:
        dispatcher = Dispatcher(engine, [parse_sink(rx.url)], attempts=2, backoff=0.05)
        watcher = Watcher(engine, dispatcher=dispatcher)
        stop = threading.Event()
        thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
        thread.start()
        time.sleep(0.3)
        started = time.monotonic()
        append_audit(engine, 1, 10)
        assert rx.event.wait(5)
        latency = time.monotonic() - started
        stop.set()
        thread.join(5)
        dispatcher.close()
    assert latency < 1.0
    assert json.loads(rx.requests[0][2])["alert"]["rule"] == "denied-burst"


def _line(i: int, t: float) -> str:
    return json.dumps(
        {
            "ts": epoch_ts(t),
            "op": "decrypt",
            "result": "denied",
            "reason": "permission denied",
            "key": "ext",
            "request_id": f"x{i}",
        }
    )


def test_follow_file_like_tail_f(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text("\n".join(_line(i, BASE + i) for i in range(5)) + "\n" + _line(5, BASE + 5)[:20])
    follower = FileFollower(path, "jsonl", ImportOptions(), FileCursor())
    watcher = Watcher(engine, files=[follower], follow_audit=False)
    assert watcher.run_once().events == 5  # the partial last line waits
    with path.open("a") as handle:
        handle.write(_line(5, BASE + 5)[20:] + "\n" + "\n".join(_line(i, BASE + i) for i in range(6, 12)) + "\n")
    assert watcher.step().events == 7
    assert _alerts(engine) == 1
    watcher.persist()  # as on exit
    # restart: the persisted cursor skips what was read
    again = Watcher(
        engine,
        files=[FileFollower(path, "jsonl", ImportOptions(), FileCursor())],
        follow_audit=False,
    )
    assert again.run_once().events == 0
    # rotation: a new file at the same path is read from its start
    path.rename(tmp_path / "app.log.1")
    path.write_text(_line(100, BASE + 100) + "\n")
    assert again.step().events == 1


@pytest.mark.slow
def test_cli_watch_once_and_alert_commands(
    db_url: str,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KEYGUARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KEYGUARD_DATABASE_URL", db_url)
    append_audit(engine, 1, 10)
    with http_receiver() as rx:
        assert main(["watch", "--once", "--json", "--sink", rx.url + "#secret=abc"]) == 1
        assert json.loads(capsys.readouterr().out) == {"events": 10, "alerts": 1}
        assert rx.requests
    assert main(["alert", "list", "--json"]) == 0
    (alert,) = json.loads(capsys.readouterr().out)
    assert alert["rule"] == "denied-burst" and alert["status"] == "open"
    assert main(["alert", "ack", str(alert["id"]), "--by", "alice", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "acknowledged"
    assert main(["alert", "ack", str(alert["id"])]) == 2
    capsys.readouterr()
    assert main(["alert", "close", str(alert["id"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "closed"
    assert main(["alert", "show", str(alert["id"]), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["deliveries"][0]["outcome"] == "delivered"
    assert "abc" not in json.dumps(shown["deliveries"])
    assert main(["alert", "show", "999"]) == 4
    assert main(["watch", "--once", "--json"]) == 0


def test_crash_before_snapshot_replays_without_realerting(engine: Engine) -> None:
    append_audit(engine, 1, 10)
    crashed = Watcher(engine, snapshot_every=3600)
    assert crashed.step().alerts == 1  # alert committed, snapshot and cursor not yet
    with http_receiver() as rx:
        dispatcher = Dispatcher(engine, [parse_sink(rx.url)], attempts=1)
        restarted = Watcher(engine, dispatcher=dispatcher)
        total = restarted.run_once()
        dispatcher.close()
    assert (total.events, total.alerts) == (10, 0)  # replayed and recognised: not raised again
    # the crashed run never delivered its alert: the restart delivers it, once
    assert len(rx.requests) == 1 and _alerts(engine) == 1
    assert Watcher(engine).run_once().events == 0  # the cursor was persisted on exit


def test_follow_vault_audit_pairs_across_reads(engine: Engine, tmp_path: Path) -> None:
    def entry(kind: str) -> str:
        return json.dumps(
            {"time": "2026-01-05T10:00:00Z", "type": kind, "auth": {"accessor": "hmac-sha256:a"},
             "request": {"id": "r1", "operation": "update", "mount_point": "transit/",
                         "mount_type": "transit", "path": "transit/decrypt/pay",
                         "remote_address": "203.0.113.5"}}
        )  # fmt: skip

    path = tmp_path / "audit.log"
    path.write_text(entry("request") + "\n")
    follower = FileFollower(path, "vault-audit", ImportOptions(), FileCursor())
    watcher = Watcher(engine, files=[follower], follow_audit=False)
    assert watcher.step().events == 0  # the response has not been written yet
    with path.open("a") as handle:
        handle.write(entry("response") + "\n")
    assert watcher.step().events == 1


def test_notify_wakes_the_watcher_on_postgresql(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL only")
    with http_receiver() as rx:
        dispatcher = Dispatcher(engine, [parse_sink(rx.url)], attempts=1)
        watcher = Watcher(engine, dispatcher=dispatcher)
        stop = threading.Event()
        thread = threading.Thread(target=watcher.run, args=(stop,), kwargs={"poll": 10.0}, daemon=True)
        thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        append_audit(engine, 1, 10)
        with engine.begin() as conn:
            conn.exec_driver_sql("SELECT pg_notify('keyguard_audit', '10')")
        assert rx.event.wait(5)
        latency = time.monotonic() - started
        stop.set()
        with engine.begin() as conn:  # wake the loop so that it sees ``stop``
            conn.exec_driver_sql("SELECT pg_notify('keyguard_audit', '10')")
        thread.join(15)
        dispatcher.close()
    assert latency < 2.0  # far below the 10 s poll: the notification woke it


def test_a_failed_step_is_retried_from_the_last_snapshot(engine: Engine) -> None:
    from sqlalchemy.exc import OperationalError

    append_audit(engine, 1, 10)
    watcher = Watcher(engine, snapshot_every=3600)
    assert watcher.audit is not None
    real_read = watcher.audit.read
    calls = {"n": 0}

    def flaky() -> tuple[list[object], int]:
        calls["n"] += 1
        if calls["n"] == 2:  # after the first step committed its alert, the database "fails"
            raise OperationalError("SELECT", {}, Exception("connection lost"))
        return real_read()  # type: ignore[return-value]

    watcher.audit.read = flaky  # type: ignore[method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), kwargs={"poll": 0.05}, daemon=True)
    thread.start()
    time.sleep(1.5)
    stop.set()
    thread.join(10)
    assert _alerts(engine) == 1  # replayed from the snapshot: not raised twice
    assert Watcher(engine).run_once().events == 0  # cursor persisted on exit


def test_background_watch(engine: Engine) -> None:
    from keyguard.monitor.watch import start_background

    with http_receiver() as rx:
        background = start_background(engine, [parse_sink(rx.url)], poll=0.05)
        append_audit(engine, 1, 10)
        assert rx.event.wait(5)
        background.stop()
    assert not background.thread.is_alive()


def test_restart_does_not_redeliver_what_was_delivered(engine: Engine) -> None:
    append_audit(engine, 1, 10)
    with http_receiver() as rx:
        first = Dispatcher(engine, [parse_sink(rx.url)], attempts=1)
        Watcher(engine, dispatcher=first).run_once()
        first.close()
        second = Dispatcher(engine, [parse_sink(rx.url)], attempts=1)
        Watcher(engine, dispatcher=second).run_once()
        second.close()
    assert len(rx.requests) == 1
