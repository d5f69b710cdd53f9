"""A scheduled-rotation pass killed with SIGKILL at every commit, then run again: exactly one new version,
every item re-wrapped under it, one ``key.rotate`` in the audit log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keyguard.audit.reading import iter_events
from keyguard.store.db import create_db_engine
from keyguard.vault.roots import KeyFileRoot
from keyguard.vault.service import Vault
from tests.conftest import PG_ADMIN_URL
from tests.data.test_inventory import _all_decrypt, _seed
from tests.killpoint import Copies

from .test_rotation import make_due

pytestmark = pytest.mark.slow
PASS = Path(__file__).with_name("kill_pass.py")
ROOT = Path(__file__).parents[2]
ITEMS = 20


def _pass(url: str, keyfile: Path, mode: str, n: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    return subprocess.run([sys.executable, str(PASS), url, str(keyfile), mode, str(n)], env=env,
                          capture_output=True, text=True, timeout=120)


def _check(url: str, keyfile: Path, admin) -> None:  # type: ignore[no-untyped-def]
    vault = Vault.open(create_db_engine(url), KeyFileRoot(keyfile))
    try:
        assert vault.key_info("k").latest == 2, "exactly one new version"
        assert _all_decrypt(vault, admin, ITEMS) == {2}, "every item re-wrapped under it"
        assert [e["version"] for e in iter_events(vault.engine) if e["op"] == "key.rotate"] == [2]
    finally:
        vault.close()
        vault.engine.dispose()


def test_a_pass_killed_at_every_commit_rotates_once(vault, admin, db_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    vault.create_key(admin, "k", "encrypt")
    _seed(vault, ITEMS)
    make_due(vault, "k")
    vault.close()
    vault.engine.dispose()
    keyfile = tmp_path / "root.key"
    copies = Copies(db_url, tmp_path, PG_ADMIN_URL)
    try:
        url = copies.clone("count")
        counted = _pass(url, keyfile, "count", 0)
        assert counted.returncode == 0, counted.stderr
        total = int(counted.stdout.split(":")[1])
        _check(url, keyfile, admin)
        failures = []
        # "after N" for every N: a transaction cut before its commit leaves what "after N-1" leaves
        for mode in ("after",):
            for n in range(1, total + 1):
                url = copies.clone(f"{mode}-{n}")
                killed = _pass(url, keyfile, mode, n)
                assert killed.returncode == -9, killed.stderr
                again = _pass(url, keyfile, "count", 0)
                try:
                    assert again.returncode == 0, again.stderr
                    _check(url, keyfile, admin)
                except AssertionError as exc:
                    failures.append(f"{mode}-{n}: {exc}")
        assert not failures, "\n".join(failures)
    finally:
        copies.drop()
