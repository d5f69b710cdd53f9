"""Opening keyguard's state from the settings: engine, migrations, vault.

Only the commands that set a vault up (``init``, ``demo``) create a database:
``open_engine(settings, create=True)`` makes the SQLite file and applies every
migration. Any other command opens what exists. A missing SQLite file, or a
database (SQLite or PostgreSQL) with no keyguard schema at all, is "not
initialised" (exit 4) and nothing is written; an existing keyguard schema is
brought up to date, so that an upgrade of keyguard needs no extra step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from keyguard.clock import Clock
from keyguard.config import Settings
from keyguard.errors import KeyguardError, NotFoundError
from keyguard.store.db import create_db_engine, migrate
from keyguard.vault.roots import RootOfTrust
from keyguard.vault.service import Vault

_SCHEMA_TABLE = "alembic_version"


def _not_initialised() -> NotFoundError:
    return NotFoundError("the vault is not initialised", hint="run keyguard init")


def _sqlite_file_missing(url: str) -> bool:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False  # create_db_engine reports the bad URL
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return False
    return not Path(parsed.database).exists()


def _has_schema(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            return _SCHEMA_TABLE in inspect(conn).get_table_names()
    except OperationalError as exc:
        raise KeyguardError(
            f"cannot reach the database: {type(exc.orig).__name__}",
            hint="check KEYGUARD_DATABASE_URL",
        ) from None


@lru_cache(maxsize=8)
def _engine(url: str, create: bool = True) -> Engine:
    if not create and _sqlite_file_missing(url):
        raise _not_initialised()
    engine = create_db_engine(url)
    if not create and not _has_schema(engine):
        engine.dispose()
        raise _not_initialised()
    migrate(engine)
    return engine


def open_engine(settings: Settings | None = None, *, create: bool = False) -> Engine:
    """The migrated engine for ``settings`` (one per URL per process).

    Without ``create`` an uninitialised database raises :class:`NotFoundError`
    and is left as it was (no file, no tables).
    """
    settings = settings or Settings.from_env()
    return _engine(settings.database_url, create)


def open_vault(settings: Settings | None = None, root: RootOfTrust | None = None, clock: Clock | None = None) -> Vault:
    """Open the initialised vault (the root of trust comes from the environment)."""
    return Vault.open(open_engine(settings), root, clock)
