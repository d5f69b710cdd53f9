"""Two ``keyguard serve`` nodes on one PostgreSQL database rotate a due key exactly once."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from keyguard.audit.reading import iter_events
from keyguard.store.db import create_db_engine
from keyguard.store.tables import Key, KeyVersion
from tests.killpoint import child_env, rerun

pytestmark = pytest.mark.slow


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_serve_nodes_rotate_a_due_key_once(pg_url: str, tmp_path: Path) -> None:
    env = child_env(pg_url, tmp_path / "home", KEYGUARD_KEYFILE=str(tmp_path / "root.key"))
    assert rerun(["init"], env).returncode == 0
    assert rerun(["key", "create", "k", "--purpose", "encrypt"], env).returncode == 0
    engine = create_db_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(update(Key).values(rotated_at=func.now() - func.make_interval(0, 0, 0, 91)))
    nodes = [subprocess.Popen([sys.executable, "-m", "keyguard", "serve", "--port", str(_port())], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        versions = 1
        while time.monotonic() < deadline and versions < 2:
            time.sleep(0.2)
            with engine.connect() as conn:
                versions = conn.execute(select(func.count()).select_from(KeyVersion)).scalar_one()
        time.sleep(2)  # room for a second (wrong) rotation
        assert all(node.poll() is None for node in nodes), "both nodes still serving"
    finally:
        for node in nodes:
            node.send_signal(signal.SIGTERM)
        for node in nodes:
            node.communicate(timeout=60)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(KeyVersion)).scalar_one() == 2
    rotations = [e for e in iter_events(engine) if e["op"] == "key.rotate"]
    assert [(e["actor"], e["version"]) for e in rotations] == [("keyguard:scheduler", 2)]
    engine.dispose()
