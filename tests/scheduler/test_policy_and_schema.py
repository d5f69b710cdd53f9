"""``policy check`` shows each key's next due rotation; migration 0010 creates exactly the lease tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from keyguard.cli.main import main
from keyguard.store.db import create_db_engine, migrate
from keyguard.store.models import Base

TABLES = {"leases", "scheduled_rotations"}


def _mentions(diff: object) -> bool:
    return any(name in repr(diff) for name in TABLES)


def test_migration_0010_matches_the_tables(db_url: str) -> None:
    engine = create_db_engine(db_url)
    migrate(engine)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert [d for d in diffs if _mentions(d)] == []


def test_policy_check_shows_the_next_due_rotation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KEYGUARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KEYGUARD_DATABASE_URL", raising=False)
    assert main(["init"]) == 0
    assert main(["key", "create", "weekly", "--purpose", "encrypt", "--rotation-days", "7"]) == 0
    capsys.readouterr()
    main(["policy", "check", "--json"])
    document = json.loads(capsys.readouterr().out)
    assert set(document) == {"violations", "rotations"}
    [row] = document["rotations"]
    assert row["key"] == "weekly" and row["overdue"] is False and row["last_scheduled"] is None
    assert row["rotation_days"] == 7 and row["next_due"] > row["rotated_at"]
    main(["policy", "check"])
    assert "next due rotation" in capsys.readouterr().out
