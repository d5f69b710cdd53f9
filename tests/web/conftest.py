"""Dashboard fixtures: the populated vault and a TestClient over the app with the dashboard.

``db_url``, ``vault`` and ``admin`` come from tests/conftest.py, so every page test
runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault
from tests.web.scene import Scene, build_scene, make_app


@pytest.fixture
def scene(vault: Vault, admin: Principal) -> Scene:
    """The populated vault (on each backend)."""
    return build_scene(vault, admin)


@pytest.fixture
def web(scene: Scene) -> Iterator[TestClient]:
    """A TestClient over the API app with the dashboard (no credentials set)."""
    with TestClient(make_app(scene.vault), base_url="http://testserver", follow_redirects=False) as client:
        yield client
