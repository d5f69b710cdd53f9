"""Human output off a terminal: full-width tables, local times with the zone, absolute references."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def kg(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if k not in ("KEYGUARD_TOKEN", "KEYGUARD_DATABASE_URL", "COLUMNS")}
    env["KEYGUARD_HOME"] = str(tmp_path / "home")

    def run(*args: str, cwd: Path | None = None, tz: str = "UTC") -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "keyguard", *args],
            capture_output=True,
            env={**env, "TZ": tz},
            cwd=cwd,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout.decode()

    run("init")
    return run


def test_piped_tables_are_not_cut_to_80_columns(kg) -> None:
    kg("key", "create", "payments-db-primary", "--tier", "high")
    shown = kg("key", "show", "payments-db-primary", "--json")
    fingerprint = json.loads(shown)["versions"][0]["fingerprint"]
    table = kg("key", "show", "payments-db-primary")
    assert fingerprint in table and "…" not in table
    assert max(len(line) for line in table.splitlines()) > 80


def test_times_are_local_to_the_second_with_the_zone(kg) -> None:
    kg("key", "create", "pay")
    paris = kg("key", "show", "pay", tz="Europe/Paris")
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (CET|CEST)", paris), paris
    shanghai = kg("audit", "tail", tz="Asia/Shanghai")
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d CST", shanghai), shanghai


def test_references_are_stored_absolute(kg, tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "apps").mkdir(parents=True)
    kg("key", "create", "pay")
    kg("client", "create", "billing", "--grant", "pay:encrypt", "--reference", "apps/billing.env", cwd=work)
    (client,) = json.loads(kg("client", "list", "--json", cwd=tmp_path))
    assert client["references"] == [str(work / "apps" / "billing.env")]
