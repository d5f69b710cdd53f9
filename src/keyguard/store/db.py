"""Engine factory and automatic migrations.

SQLite (WAL, synchronous=FULL, a long busy timeout so several processes can
share the file) is the embedded default; PostgreSQL is the multi-node backend.
Migrations are applied on first use, under a lock so that concurrent starters
do not race.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from keyguard.errors import KeyguardError, UsageError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_migrated: set[str] = set()
_lock = threading.Lock()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def create_db_engine(url: str) -> Engine:
    """Create an engine for ``url`` with the right settings for its backend."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageError(
            "invalid KEYGUARD_DATABASE_URL", hint="use sqlite:///PATH or postgresql+psycopg://..."
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database)
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not path.exists():
                fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
        engine = create_engine(
            url,
            json_serializer=canonical_json,
            connect_args={"check_same_thread": False, "timeout": 60, "isolation_level": None},
            # Big enough that threads never churn overflow connections (each new one re-runs the pragmas).
            pool_size=32,
            max_overflow=32,
        )
        event.listen(engine, "connect", _sqlite_pragmas)

        # pysqlite's own transaction handling is off (isolation_level=None); emit
        # BEGIN ourselves so that SQLAlchemy's transactions are real ones.
        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")

        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, json_serializer=canonical_json, pool_size=10, max_overflow=20, pool_pre_ping=True)
    raise UsageError(
        f"unsupported database backend {parsed.get_backend_name()!r}",
        hint="use sqlite or postgresql+psycopg",
    )


def canonical_json(value: Any) -> str:
    """JSON columns are stored canonically (sorted keys, no spaces), so stored text can be
    used as-is where a canonical form is needed (encryption contexts as associated data)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def is_sqlite(engine: Engine) -> bool:
    """True when ``engine`` talks to SQLite."""
    return engine.dialect.name == "sqlite"


_REVISION = re.compile(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision\s*=\s*(.+)$", re.M)


def expected_heads() -> set[str]:
    """Head revisions of the migration scripts, read without importing Alembic (fast start-up)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        found = _REVISION.search(source)
        if found:
            revisions.add(found.group(1))
        down = _DOWN.search(source)
        if down:
            parents.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    return revisions - parents


def _current_heads(engine: Engine) -> set[str]:
    try:
        with engine.connect() as conn:
            if "alembic_version" not in inspect(conn).get_table_names():
                return set()
            return {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}
    except OperationalError as exc:
        raise KeyguardError(
            f"cannot reach the database: {type(exc.orig).__name__}",
            hint="check KEYGUARD_DATABASE_URL",
        ) from None


def migrate(engine: Engine) -> None:
    """Apply every Alembic migration not yet applied (idempotent, concurrency safe)."""
    key = str(engine.url)
    with _lock:
        if key in _migrated:
            return
        if _current_heads(engine) == expected_heads():
            _migrated.add(key)
            return
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with write_tx(engine) as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(7310411)"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")
        _migrated.add(key)


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A read-write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE)."""
    with engine.connect() as conn:
        conn.info["write"] = True
        try:
            with conn.begin():
                yield conn
        finally:
            conn.info.pop("write", None)


def table_names(engine: Engine) -> list[str]:
    """Names of the tables present (for tests and diagnostics)."""
    return sorted(inspect(engine).get_table_names())
