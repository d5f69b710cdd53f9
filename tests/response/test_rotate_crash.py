"""``incident rotate`` killed with SIGKILL after every commit, then rerun: exactly one new version.

The incident names the key without a version (every usable version leaked), so
after the rotation the new version is itself "usable": a rerun that does not
know which version it made would rotate once more per interruption.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from tests.conftest import PG_ADMIN_URL
from tests.data.test_inventory import _all_decrypt, _seed
from tests.killpoint import Copies, child_env, commits, rerun, run

from keyguard.incident.service import IncidentService
from keyguard.response.steps import Responder
from keyguard.store.db import create_db_engine
from keyguard.vault.roots import KeyFileRoot
from keyguard.vault.service import Vault

pytestmark = pytest.mark.slow
ITEMS = 40


@pytest.fixture
def copies(vault, admin, db_url: str, tmp_path: Path) -> Iterator[tuple[Copies, int]]:  # type: ignore[no-untyped-def]
    vault.create_key(admin, "k", "encrypt")
    _seed(vault, ITEMS)
    incidents = IncidentService(vault.engine, vault.clock)
    incident = incidents.open([("k", None)], vault.clock.now() - timedelta(hours=1))
    Responder(vault, incidents, admin).contain(incident.id)
    vault.close()
    vault.engine.dispose()
    made = Copies(db_url, tmp_path, PG_ADMIN_URL)
    yield made, incident.id
    made.drop()


def _check(url: str, root_key: Path, admin) -> None:  # type: ignore[no-untyped-def]
    vault = Vault.open(create_db_engine(url), KeyFileRoot(root_key))
    try:
        assert vault.key_info("k").latest == 2, "exactly one new version"
        assert _all_decrypt(vault, admin, ITEMS) == {2}, "every item re-wrapped under it"
    finally:
        vault.close()
        vault.engine.dispose()


def test_incident_rotate_killed_after_every_commit_finishes_the_same_rotation(
    copies: tuple[Copies, int], tmp_path: Path, admin
) -> None:  # type: ignore[no-untyped-def]
    made, incident_id = copies
    root_key = tmp_path / "root.key"
    args = ["incident", "rotate", str(incident_id), "--json"]
    url = made.clone("count")
    total = commits(run("count", 0, args, child_env(url, tmp_path / "h", KEYGUARD_KEYFILE=str(root_key))))
    _check(url, root_key, admin)
    failures: list[str] = []
    for n in range(1, total + 1):
        url = made.clone(f"after-{n}")
        env = child_env(url, tmp_path / f"h{n}", KEYGUARD_KEYFILE=str(root_key))
        killed = run("after", n, args, env)
        assert killed.returncode == -9, killed.stderr
        again = rerun(args, env)
        if again.returncode != 0:
            failures.append(f"after-{n}: rerun exit {again.returncode}: {again.stderr.strip()}")
            continue
        try:
            assert json.loads(again.stdout)["rotated"][0]["version"] == 2
            _check(url, root_key, admin)
        except AssertionError as exc:
            failures.append(f"after-{n}: {exc}")
    assert not failures, "\n".join(failures)
