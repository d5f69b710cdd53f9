"""Fixtures of the incident tests (the shared ``db_url`` comes from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from keyguard.clock import FrozenClock
from keyguard.incident.service import IncidentService

DETECTED = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
EXPOSED = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    """Frozen at 09:10 UTC on 27 Nov 2026, ten minutes after the detection."""
    return FrozenClock(datetime(2026, 11, 27, 9, 10, tzinfo=UTC))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated engine on each backend."""
    from keyguard.store.db import create_db_engine, migrate

    eng = create_db_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def service(engine: Engine, clock: FrozenClock) -> IncidentService:
    """An incident service on each backend with the frozen clock."""
    return IncidentService(engine, clock)
