"""A signing-key rotation killed with SIGKILL inside and after each of its commits, on both backends.

``keyguard client token NAME --jwt`` finds the signing key due (``[auth] jwt_rotation``
passed) and rotates it before signing. Killed at any commit and rerun, there is
exactly one signing key, only it can still sign (every older one has lost its
salt), the generations have no gap and the rerun prints a token signed by it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import jwt as pyjwt
import pytest
from sqlalchemy import select, update
from tests.killpoint import child_env, commits, rerun, run

from keyguard.audit.reading import verify_log
from keyguard.store.db import create_db_engine, migrate
from keyguard.store.jwt_tables import JwtSigningKey
from keyguard.vault.clients import ClientService
from keyguard.vault.jwt_config import JwtConfig
from keyguard.vault.jwt_tokens import JwtService
from keyguard.vault.principal import local_admin
from keyguard.vault.roots import KeyFileRoot
from keyguard.vault.service import Vault

pytestmark = pytest.mark.slow
ARGS = ["client", "token", "svc", "--jwt"]


def _make_due(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        newest = conn.execute(
            select(JwtSigningKey.generation, JwtSigningKey.created_at).order_by(JwtSigningKey.generation.desc())
        ).first()
        conn.execute(
            update(JwtSigningKey)
            .where(JwtSigningKey.generation == newest.generation)
            .values(created_at=newest.created_at - timedelta(minutes=5))
        )


def _check(engine) -> list:  # type: ignore[no-untyped-def,type-arg]
    with engine.connect() as conn:
        rows = conn.execute(select(JwtSigningKey).order_by(JwtSigningKey.generation)).all()
    assert [r.generation for r in rows] == list(range(1, len(rows) + 1))
    assert [r.generation for r in rows if r.retired_at is None] == [rows[-1].generation]
    assert [r.generation for r in rows if r.salt is not None] == [rows[-1].generation]
    return rows


def test_rotation_survives_kill_9_at_every_commit(db_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "keyguard.toml").write_text('[auth]\njwt_rotation = "1m"\n')
    engine = create_db_engine(db_url)
    migrate(engine)
    vault = Vault.initialize(engine, KeyFileRoot.create(home / "root.key"))
    ClientService(vault).create(local_admin(), "svc", "service", [])
    JwtService(ClientService(vault), JwtConfig(rotation=timedelta(minutes=1))).keyring.rotate()
    vault.close()
    env = child_env(db_url, home, KEYGUARD_KEYFILE=str(home / "root.key"))
    _make_due(engine)
    total = commits(run("count", 0, ARGS, env))
    assert total >= 1  # the rotation (the audit append commits on its own connection)
    for mode in ("in", "after"):
        for n in range(1, total + 1):
            _make_due(engine)
            before = len(_check(engine))
            killed = run(mode, n, ARGS, env)
            assert killed.returncode == -9, (mode, n, killed.stderr)
            rows = _check(engine)
            assert len(rows) in (before, before + 1)
            again = rerun(ARGS, env)
            assert again.returncode == 0, again.stderr
            rows = _check(engine)
            token = again.stdout.splitlines()[0]
            assert pyjwt.get_unverified_header(token)["kid"] == rows[-1].kid
    verify_log(engine)  # raises on a broken chain
    engine.dispose()
