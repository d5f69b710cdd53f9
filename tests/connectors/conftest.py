"""Session-scoped real servers for the connector tests; each skips with its reason when absent."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from keyguard.connectors.config import ConnectorConfig, parse_connector

from .servers import Bao, Moto, Postgres, bao_server, moto_server, postgres_server


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
