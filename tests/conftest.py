"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL.

``db_url`` is parametrized over both backends. The PostgreSQL variant creates a
database ``kg_test_<random>`` on 127.0.0.1:5432 and drops it afterwards; it
skips with the reason when PostgreSQL cannot be reached.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get("KEYGUARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:  # noqa: BLE001
        return f"PostgreSQL unreachable at 127.0.0.1:5432: {type(exc).__name__}"


_PG_SKIP: str | None | bool = False


def pg_skip_reason() -> str | None:
    """Why PostgreSQL tests must skip, or None (probed once per session)."""
    global _PG_SKIP
    if _PG_SKIP is False:
        _PG_SKIP = _pg_available()
    return _PG_SKIP if isinstance(_PG_SKIP, str) else None


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database URL, dropped after the test."""
    reason = pg_skip_reason()
    if reason:
        pytest.skip(reason)
    import psycopg

    name = f"kg_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        from keyguard.runtime import _engine

        _engine.cache_clear()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database URL in a temporary directory."""
    return f"sqlite:///{tmp_path / 'keyguard.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each storage test runs once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'keyguard.db'}"
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture
def vault_factory(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Build an initialised vault on ``db_url`` with a key-file root."""
    from keyguard.store.db import create_db_engine, migrate
    from keyguard.vault.roots import KeyFileRoot
    from keyguard.vault.service import Vault

    made: list[Vault] = []

    def make(clock=None):  # type: ignore[no-untyped-def]
        engine = create_db_engine(db_url)
        migrate(engine)
        root = KeyFileRoot.create(tmp_path / "root.key")
        vault = Vault.initialize(engine, root, clock) if not made else Vault.open(engine, root, clock)
        made.append(vault)
        return vault

    yield make
    for vault in made:
        vault.close()
        vault.engine.dispose()


@pytest.fixture
def vault(vault_factory):  # type: ignore[no-untyped-def]
    """An initialised vault on each backend."""
    return vault_factory()


@pytest.fixture
def admin():  # type: ignore[no-untyped-def]
    """The local administrator principal."""
    from keyguard.vault.principal import local_admin

    return local_admin()
