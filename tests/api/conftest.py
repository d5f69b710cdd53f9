"""API fixtures: an app over each backend's vault, and clients with tokens.

``db_url``, ``vault_factory``, ``vault`` and ``admin`` come from tests/conftest.py
(every test runs on SQLite and on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from keyguard.api import create_app
from keyguard.vault.clients import ClientService
from keyguard.vault.principal import Principal, parse_grants
from keyguard.vault.service import Vault

TokenFactory = Callable[..., str]


def auth(token: str) -> dict[str, str]:
    """Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def make_token(vault: Vault, admin: Principal, name: str, role: str, grants: list[str] | None = None) -> str:
    """Create client ``name`` and return a fresh bearer token for it."""
    service = ClientService(vault)
    service.create(admin, name, role, parse_grants(grants or []))
    token, _ = service.issue_token(admin, name)
    return token


@pytest.fixture
def tokens(vault: Vault, admin: Principal) -> TokenFactory:
    """``tokens(name, role, grants)`` → bearer token."""

    def make(name: str, role: str, grants: list[str] | None = None) -> str:
        return make_token(vault, admin, name, role, grants)

    return make


@pytest.fixture
def api(vault: Vault) -> Iterator[TestClient]:
    """A TestClient over the vault (lifespan running, so the watcher is on)."""
    app = create_app(vault=vault, trusted_proxies=["10.9.0.0/16"])
    with TestClient(app, client=("192.0.2.7", 40000)) as client:
        yield client


@pytest.fixture
def root_token(tokens: TokenFactory) -> str:
    """An admin client's token."""
    return tokens("root", "admin")


@pytest.fixture
def as_admin(api: TestClient, root_token: str) -> TestClient:
    """The TestClient with an admin token on every request."""
    api.headers.update(auth(root_token))
    return api


@pytest.fixture
def events(vault: Vault) -> Callable[..., list[dict[str, Any]]]:
    """``events(op=..., result=...)`` → audit events whose fields equal the arguments."""
    from keyguard.audit.reading import iter_events

    def find(**match: Any) -> list[dict[str, Any]]:
        return [e for e in iter_events(vault.engine) if all(e.get(k) == v for k, v in match.items())]

    return find
