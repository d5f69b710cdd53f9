"""Which node runs the scheduled work: one lock per database, released when its holder dies.

On PostgreSQL it is ``pg_try_advisory_lock`` held by a dedicated session: the server frees
it the moment that session ends (crash, kill -9, network loss), so another node takes over
on its next try. On SQLite (one node) it is an exclusive ``flock`` on a file beside the
database, which is what keeps several ``serve --workers`` processes from all reaping.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

#: The advisory lock id of the scheduler (migrations use 7310411).
LOCK_ID = 7310412


class Leadership:
    """Try to be (and stay) the scheduler's node; :meth:`held` re-checks on every call."""

    def __init__(self, engine: Engine, lock_id: int = LOCK_ID) -> None:
        self.engine = engine
        self.lock_id = lock_id
        self._conn: Any = None
        self._fd: int | None = None

    def _lock_file(self) -> Path | None:
        database = self.engine.url.database
        if not database or database == ":memory:":
            return None
        return Path(database).with_name(Path(database).name + ".scheduler.lock")

    def held(self) -> bool:
        """True when this process is the leader now (taking the lock if it is free)."""
        if self.engine.dialect.name == "postgresql":
            return self._held_pg()
        return self._held_file()

    def _held_pg(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                self._conn.commit()  # never sit idle in a transaction: the lock is the session's
                return True
            except Exception:  # noqa: BLE001 - the session died, and the lock with it
                self._drop_conn()
        try:
            conn = self.engine.connect()
        except Exception:  # noqa: BLE001 - database unreachable: not the leader now
            return False
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:id)"), {"id": self.lock_id}).scalar())
            conn.commit()
        except Exception:  # noqa: BLE001
            conn.close()
            return False
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _drop_conn(self) -> None:
        try:
            self._conn.invalidate()
        except Exception:  # noqa: BLE001, S110 - already gone
            pass
        self._conn = None

    def _held_file(self) -> bool:
        if self._fd is not None:
            return True
        path = self._lock_file()
        if path is None:
            return True
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Give the lock up (shutdown)."""
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": self.lock_id})
                self._conn.commit()
                self._conn.close()
            except Exception:  # noqa: BLE001
                self._drop_conn()
            self._conn = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
