"""Where keyguard keeps its state, read from the environment (SPEC §2)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# Bounds of the integers a user types (CLI options, API parameters), checked at the
# edge so that an absurd value is bad input, never an overflow deep in storage:
# versions and row ids (incidents, alerts) fit PostgreSQL's INTEGER, counts and audit
# event ids a signed 64-bit integer.
MAX_VERSION = 2**31 - 1
MAX_ID = 2**31 - 1
MAX_COUNT = 2**63 - 1


@dataclass(frozen=True)
class Settings:
    """Process-wide settings. ``from_env`` is the only reader of the environment."""

    home: Path
    database_url: str
    debug: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Build settings from ``KEYGUARD_HOME`` and ``KEYGUARD_DATABASE_URL``."""
        env = dict(os.environ if environ is None else environ)
        home = Path(env.get("KEYGUARD_HOME") or "./.keyguard").resolve()
        url = env.get("KEYGUARD_DATABASE_URL") or f"sqlite:///{home / 'keyguard.db'}"
        return cls(home=home, database_url=url, debug=env.get("KEYGUARD_DEBUG") == "1")

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded default."""
        return self.database_url.startswith("sqlite")

    @property
    def config_file(self) -> Path:
        """``$KEYGUARD_HOME/keyguard.toml``."""
        return self.home / "keyguard.toml"
