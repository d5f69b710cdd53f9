"""Fixtures of the monitor tests: a migrated engine on each backend (``db_url`` from tests/)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from keyguard.store.db import create_db_engine, migrate


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated engine on SQLite and on PostgreSQL."""
    eng = create_db_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()
