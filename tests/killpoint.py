"""Run the keyguard CLI and kill -9 it at a chosen database commit (crash tests).

    python tests/killpoint.py count   0 -- ARGS…   run ARGS to the end; print "killpoint-commits: N" on stderr
    python tests/killpoint.py in      N -- ARGS…   SIGKILL inside the Nth committing transaction, just
                                                  before it commits (its changes are lost)
    python tests/killpoint.py after   N -- ARGS…   SIGKILL right after the Nth commit, before the process
                                                  does anything else with the database (or exits)

Every transaction that commits is a step that persists something, so "in N" and
"after N" for N = 1..count are every point where a kill -9 can leave a different
state behind. ``KILLPOINT_SET`` (``module:attribute=int``, comma-separated) sets
module constants first (smaller batches, so that there are several of them).
"""

from __future__ import annotations

import atexit
import importlib
import os
import runpy
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

HARNESS = Path(__file__)
SRC = HARNESS.parents[1] / "src"


def run(mode: str, n: int, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``keyguard ARGS`` under the harness (``mode`` count, in or after; ``n`` the commit)."""
    cmd = [sys.executable, str(HARNESS), mode, str(n), "--", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


def rerun(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``keyguard ARGS`` plainly (the rerun after a kill)."""
    cmd = [sys.executable, "-m", "keyguard", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


def commits(done: subprocess.CompletedProcess[str]) -> int:
    """How many transactions a ``count`` run committed."""
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("killpoint-commits:"))
    return int(line.split(":")[1])


def child_env(url: str, home: Path, **extra: str) -> dict[str, str]:
    """A clean environment for a child keyguard on database ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGUARD_")}
    env.update(PYTHONPATH=os.pathsep.join([str(SRC), str(HARNESS.parents[1])]))
    env.update(KEYGUARD_HOME=str(home), KEYGUARD_DATABASE_URL=url, **extra)
    return env


class Copies:
    """Fresh copies of a seeded database (SQLite file copy, PostgreSQL template), one per kill point."""

    def __init__(self, seed_url: str, tmp_path: Path, admin_url: str) -> None:
        self.seed_url = seed_url
        self.tmp_path = tmp_path
        self.admin_url = admin_url
        self.made: list[str] = []

    def clone(self, name: str) -> str:
        """A copy of the seed database (nothing may be connected to the seed)."""
        if self.seed_url.startswith("sqlite"):
            source = Path(self.seed_url.removeprefix("sqlite:///"))
            target = self.tmp_path / f"{name}.db"
            shutil.copyfile(source, target)
            return f"sqlite:///{target}"
        import psycopg

        seed_db = self.seed_url.rsplit("/", 1)[1]
        db = f"{seed_db}_{name}".replace("-", "_")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db}" TEMPLATE "{seed_db}"')
        self.made.append(db)
        return self.seed_url.rsplit("/", 1)[0] + "/" + db

    def drop(self) -> None:
        """Drop the PostgreSQL copies."""
        if not self.made:
            return
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for db in self.made:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    mode, target = sys.argv[1], int(sys.argv[2])
    args = sys.argv[sys.argv.index("--") + 1 :]
    for item in filter(None, os.environ.get("KILLPOINT_SET", "").split(",")):
        name, value = item.split("=")
        module, attr = name.split(":")
        setattr(importlib.import_module(module), attr, int(value))
    commits = 0

    @event.listens_for(Engine, "commit")
    def _commit(_conn: Any) -> None:  # fired before the DBAPI commit
        nonlocal commits
        commits += 1
        if mode == "in" and commits == target:
            _die()

    def _next(*_args: Any, **_kwargs: Any) -> None:
        if mode == "after" and commits >= target:
            _die()

    event.listen(Engine, "begin", _next)
    event.listen(Engine, "before_cursor_execute", _next)

    def _at_exit() -> None:
        if mode == "count":
            print(f"killpoint-commits: {commits}", file=sys.stderr)
        _next()

    atexit.register(_at_exit)
    sys.argv = ["keyguard", *args]
    runpy.run_module("keyguard", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
