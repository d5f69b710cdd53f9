"""``creds issue`` and ``lease …`` on the command line, and ``creds issue`` killed with SIGKILL at every commit."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from keyguard.cli.main import main
from keyguard.connectors.leases import LeaseManager
from tests.conftest import PG_ADMIN_URL
from tests.killpoint import child_env, commits, run

from .conftest import PgTarget, pg_role_exists

TOML = """
[connectors.pg]
type = "postgresql"
dsn = "{dsn}"

[connectors.pg.roles.readonly]
template = "{template}"
default_ttl = "15m"
max_ttl = "1h"
"""


def _members(template: str) -> set[str]:
    with psycopg.connect(PG_ADMIN_URL) as conn:
        return {r for (r,) in conn.execute(
            "SELECT m.rolname FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member "
            "JOIN pg_roles t ON t.oid = a.roleid WHERE t.rolname = %s", (template,)).fetchall()}


@pytest.fixture
def home(tmp_path: Path, pg_target: PgTarget, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("KEYGUARD_HOME", str(home))
    monkeypatch.delenv("KEYGUARD_DATABASE_URL", raising=False)
    monkeypatch.delenv("KEYGUARD_TOKEN", raising=False)
    assert main(["init"]) == 0
    (home / "keyguard.toml").write_text(TOML.format(dsn=pg_target.dsn, template=pg_target.template))
    return home


def _json(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 0) -> object:
    capsys.readouterr()
    assert main(argv) == code
    return json.loads(capsys.readouterr().out)


def test_issue_list_renew_revoke_from_the_cli(home: Path, pg_target: PgTarget,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    issued = _json(capsys, ["creds", "issue", "pg/role/readonly", "--ttl", "15m", "--json"])
    assert isinstance(issued, dict) and set(issued) == {"lease_id", "username", "password", "expires_at"}
    assert pg_role_exists(issued["username"])
    listed = _json(capsys, ["lease", "list", "--json"])
    assert [x["lease_id"] for x in listed] == [issued["lease_id"]]  # type: ignore[union-attr, index]
    assert issued["password"] not in json.dumps(listed)
    renewed = _json(capsys, ["lease", "renew", issued["lease_id"], "--ttl", "30m", "--json"])
    assert renewed["expires_at"] > issued["expires_at"]  # type: ignore[index]
    second = _json(capsys, ["creds", "issue", "pg/role/readonly", "--json"])
    revoked = _json(capsys, ["lease", "revoke", "--prefix", "pg/role/readonly", "--json"])
    assert len(revoked["revoked"]) == 2  # type: ignore[index]
    assert not pg_role_exists(issued["username"]) and not pg_role_exists(second["username"])  # type: ignore[index]
    assert _json(capsys, ["lease", "list", "--json"]) == []


@pytest.mark.parametrize(("argv", "code", "says"), [
    (["creds", "issue", "pg/role/readonly", "--ttl", "2h"], 2, "max_ttl"),
    (["creds", "issue", "pg/role/readonly", "--ttl", "soon"], 2, "invalid ttl"),
    (["creds", "issue", "pg/role/nope"], 4, "no role 'nope'"),
    (["creds", "issue", "nope/role/readonly"], 4, "unknown connector"),
    (["creds", "issue", "pg/readonly"], 2, "invalid credential path"),
    (["lease", "renew", "pg/role/readonly/x"], 4, "not found"),
    (["lease", "revoke"], 2, "give a lease id or --prefix"),
])
def test_bad_input_is_one_line_and_its_exit_code(home: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                                  code: int, says: str) -> None:
    assert main(argv) == code
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.slow
def test_creds_issue_killed_at_every_commit_leaks_no_user(db_url: str, tmp_path: Path, pg_target: PgTarget) -> None:
    home = tmp_path / "h"
    env = child_env(db_url, home, KEYGUARD_KEYFILE=str(tmp_path / "root.key"))
    from tests.killpoint import rerun

    assert rerun(["init"], env).returncode == 0
    (home / "keyguard.toml").write_text(TOML.format(dsn=pg_target.dsn, template=pg_target.template))
    args = ["creds", "issue", "pg/role/readonly", "--ttl", "10m", "--json"]
    total = commits(run("count", 0, args, env))
    assert total >= 2
    for mode in ("in", "after"):
        for n in range(1, total + 1):
            killed = run(mode, n, args, env)
            assert killed.returncode in (-9, 0), killed.stderr
    from keyguard.connectors.config import load_connectors
    from keyguard.store.db import create_db_engine
    from keyguard.vault.roots import KeyFileRoot
    from keyguard.vault.service import Vault

    vault = Vault.open(create_db_engine(db_url), KeyFileRoot(tmp_path / "root.key"))
    manager = LeaseManager(vault.engine, vault.audit, load_connectors(home / "keyguard.toml"),
                           pending_grace=timedelta(0))
    try:
        leftover = _members(pg_target.template)
        assert leftover, "some runs were killed after CREATE ROLE"
        manager.reap()
        active = {x["username"] for x in manager.list_leases() if x["state"] == "active"}
        assert _members(pg_target.template) == active, "every user left is one of a confirmed lease"
        assert not [x for x in manager.list_leases() if x["state"] == "pending"]
    finally:
        manager.close()
        vault.close()
        vault.engine.dispose()


@pytest.mark.slow
def test_lease_revoke_prefix_killed_at_every_commit_then_rerun_leaves_no_user(db_url: str, tmp_path: Path,
                                                                             pg_target: PgTarget) -> None:
    from keyguard.connectors.config import load_connectors
    from keyguard.store.db import create_db_engine
    from keyguard.vault.roots import KeyFileRoot
    from keyguard.vault.service import Vault
    from tests.killpoint import rerun

    home = tmp_path / "h"
    env = child_env(db_url, home, KEYGUARD_KEYFILE=str(tmp_path / "root.key"))
    assert rerun(["init"], env).returncode == 0
    (home / "keyguard.toml").write_text(TOML.format(dsn=pg_target.dsn, template=pg_target.template))
    vault = Vault.open(create_db_engine(db_url), KeyFileRoot(tmp_path / "root.key"))
    manager = LeaseManager(vault.engine, vault.audit, load_connectors(home / "keyguard.toml"))
    args = ["lease", "revoke", "--prefix", "pg/role/readonly", "--json"]
    try:
        for _ in range(2):
            manager.issue("pg/role/readonly", timedelta(minutes=10), "t")
        total = commits(run("count", 0, args, env))
        assert total >= 2
        for n in range(1, total + 1):
            issued = [manager.issue("pg/role/readonly", timedelta(minutes=10), "t") for _ in range(2)]
            assert run("after", n, args, env).returncode == -9
            again = rerun(args, env)
            assert again.returncode == 0, again.stderr
            assert _members(pg_target.template) == set(), f"after {n}: a user survived"
            assert all(manager.get(i.lease_id)["state"] == "revoked" for i in issued)
    finally:
        manager.close()
        vault.close()
        vault.engine.dispose()
