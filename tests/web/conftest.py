"""Dashboard fixtures: the populated vault and a TestClient over the app with the dashboard.

``db_url``, ``vault`` and ``admin`` come from tests/conftest.py, so every page test
runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault
from tests.web.browser import chromium_path
from tests.web.scene import Scene, build_scene, make_app


@pytest.fixture
def chromium() -> tuple[str, ModuleType]:
    """Chromium's path and ``playwright.sync_api``; checked before any server or database is set up."""
    executable = chromium_path()
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    return executable, sync_api


@pytest.fixture
def scene(vault: Vault, admin: Principal) -> Scene:
    """The populated vault (on each backend)."""
    return build_scene(vault, admin)


@pytest.fixture
def web(scene: Scene) -> Iterator[TestClient]:
    """A TestClient over the API app with the dashboard (no credentials set)."""
    with TestClient(make_app(scene.vault), base_url="http://testserver", follow_redirects=False) as client:
        yield client
