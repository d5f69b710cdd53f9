"""Real servers for the connector tests (each skips with its reason when absent), Redis ACL users
made and dropped per test, and the keyguard CLI in a fresh home."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from keyguard.connectors.config import ConnectorConfig, parse_connector

from .servers import Bao, Moto, Postgres, bao_server, moto_server, postgres_server, redis_reason


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    with moto_server() as server:
        if isinstance(server, str):
            pytest.skip(server)
        yield server


@pytest.fixture(scope="session")
def bao() -> Iterator[Bao]:
    with bao_server() as server:
        if isinstance(server, str):
            pytest.skip(server)
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with postgres_server() as server:
        if isinstance(server, str):
            pytest.skip(server)
        yield server


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture
def aws_config(moto: Moto) -> tuple[ConnectorConfig, dict[str, str]]:
    """An ``aws`` connector on moto, and the environment holding its admin credentials."""
    config = parse_connector("aws-test", {
        "type": "aws", "endpoint_url": moto.endpoint, "region": "us-east-1",
        "access_key_id_env": "KG_T_AWS_ID", "secret_access_key_env": "KG_T_AWS_SECRET",
    })
    return config, {"KG_T_AWS_ID": moto.key_id, "KG_T_AWS_SECRET": moto.secret}


#: ``kg(*args, code=0, stdin=None, extra=None)``: the keyguard CLI in a fresh home (``kg`` fixture).
Kg = Callable[..., subprocess.CompletedProcess[str]]
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def root() -> Iterator[redis.Redis]:
    reason = redis_reason(REDIS_URL)
    if reason:
        pytest.skip(reason)
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def users(root: redis.Redis) -> Iterator[Callable[..., tuple[str, str]]]:
    made: list[str] = []

    def make(*rules: str) -> tuple[str, str]:
        name, password = unique("kgt"), "pw-" + secrets.token_urlsafe(14)
        root.execute_command("ACL", "SETUSER", name, "on", ">" + password, *rules)
        made.append(name)
        return name, password

    yield make
    for name in made:
        root.execute_command("ACL", "DELUSER", name)


@pytest.fixture
def kg(tmp_path: Path) -> Kg:
    env = dict(os.environ, KEYGUARD_HOME=str(tmp_path / "home"),
               KEYGUARD_DATABASE_URL=f"sqlite:///{tmp_path / 'kg.db'}")
    for name in ("KEYGUARD_TOKEN", "KEYGUARD_OTP", "KEYGUARD_MFA"):
        env.pop(name, None)

    def run(*args: str, code: int | None = 0, stdin: str | None = None,
            extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "keyguard", *args], env={**env, **(extra or {})}, input=stdin,
                              capture_output=True, text=True, timeout=180)
        if code is not None:
            assert proc.returncode == code, (args, proc.returncode, proc.stdout, proc.stderr)
        return proc

    run("init")
    return run

