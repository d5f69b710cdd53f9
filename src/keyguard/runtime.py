"""Opening keyguard's state from the settings: engine, migrations, vault."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine

from keyguard.clock import Clock
from keyguard.config import Settings
from keyguard.store.db import create_db_engine, migrate
from keyguard.vault.roots import RootOfTrust
from keyguard.vault.service import Vault


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    engine = create_db_engine(url)
    migrate(engine)
    return engine


def open_engine(settings: Settings | None = None) -> Engine:
    """The migrated engine for ``settings`` (one per URL per process)."""
    settings = settings or Settings.from_env()
    return _engine(settings.database_url)


def open_vault(settings: Settings | None = None, root: RootOfTrust | None = None, clock: Clock | None = None) -> Vault:
    """Open the initialised vault (the root of trust comes from the environment)."""
    return Vault.open(open_engine(settings), root, clock)
