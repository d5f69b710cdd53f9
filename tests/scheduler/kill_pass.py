"""One scheduled-rotation pass, SIGKILLed at a chosen commit (the scheduler's crash test).

    python kill_pass.py URL KEYFILE MODE N     MODE: count (print the commits), in, after (see tests/killpoint.py)
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from keyguard.response.scheduler.rotation import ScheduledRotations
from keyguard.store.db import create_db_engine
from keyguard.vault.roots import KeyFileRoot
from keyguard.vault.service import Vault


def main() -> None:
    url, keyfile, mode, target = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    vault = Vault.open(create_db_engine(url), KeyFileRoot(Path(keyfile)))
    commits = 0

    @event.listens_for(Engine, "commit")
    def _commit(_conn: Any) -> None:
        nonlocal commits
        commits += 1
        if mode == "in" and commits == target:
            os.kill(os.getpid(), signal.SIGKILL)

    def _next(*_args: Any, **_kwargs: Any) -> None:
        if mode == "after" and commits >= target:
            os.kill(os.getpid(), signal.SIGKILL)

    event.listen(Engine, "begin", _next)
    event.listen(Engine, "before_cursor_execute", _next)
    ScheduledRotations(vault, batch=7, claim_grace=timedelta(0), retry_after=timedelta(0)).run()
    _next()
    print(f"commits: {commits}")


if __name__ == "__main__":
    main()
