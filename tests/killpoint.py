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
import signal
import sys
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


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
