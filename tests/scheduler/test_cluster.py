"""Exactly one node schedules: the leader lock on PostgreSQL and SQLite, and two processes on one database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from keyguard.audit.reading import iter_events
from keyguard.response.scheduler.leader import Leadership
from keyguard.store.db import create_db_engine

from .test_rotation import make_due

NODE = Path(__file__).with_name("node.py")
ROOT = Path(__file__).parents[2]


def test_one_leader_at_a_time_and_the_next_takes_over(db_url: str) -> None:
    first, second = Leadership(create_db_engine(db_url)), Leadership(create_db_engine(db_url))
    try:
        assert first.held() and first.held()
        assert not second.held()
        first.release()
        assert second.held() and not first.held()
    finally:
        first.release()
        second.release()
        first.engine.dispose()
        second.engine.dispose()


def test_the_lock_dies_with_its_session_on_postgresql(pg_url: str) -> None:
    first, second = Leadership(create_db_engine(pg_url)), Leadership(create_db_engine(pg_url))
    try:
        assert first.held() and not second.held()
        first._conn.invalidate()  # the leader's connection is cut (crash, network)
        first._conn = None
        # The server frees the lock when it notices the session is gone, a moment after the cut.
        deadline = time.monotonic() + 10
        while not second.held() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.held()
        assert not first.held()
    finally:
        first.release()
        second.release()


def test_two_processes_on_one_database_rotate_a_due_key_once(db_url: str, vault, admin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    vault.create_key(admin, "k", "encrypt")
    make_due(vault, "k")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    nodes = [subprocess.Popen([sys.executable, str(NODE), db_url, str(tmp_path / "root.key"), "3"], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    for node in nodes:
        assert node.stdout is not None and node.stdout.readline().strip() == "ready"
    for node in nodes:
        assert node.stdin is not None
        node.stdin.write("go\n")
        node.stdin.flush()
    results = [json.loads(node.stdout.readline()) for node in nodes]  # type: ignore[union-attr]
    for node in nodes:
        node.communicate("exit\n", timeout=60)
    assert sorted(bool(r["led"]) for r in results) == [False, True], results  # one leader the whole time
    assert sum(len(r["rotated"]) for r in results) == 1
    vault._invalidate()
    assert vault.key_info("k").latest == 2
    events = [e for e in iter_events(vault.engine) if e["op"] == "key.rotate"]
    assert [(e["actor"], e["version"], e["result"]) for e in events] == [("keyguard:scheduler", 2, "ok")]
