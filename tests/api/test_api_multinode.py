"""Containment on every node: a change made through node A is enforced by node B within 1 s.

Each node is its own Vault on its own engine over the same database (the
PostgreSQL variant is the multi-node deployment; the SQLite one is several
processes sharing a file). Node B runs its watcher, as ``keyguard serve`` does.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from keyguard.api import create_app

BODY = {"plaintext_b64": base64.b64encode(b"4111 1111 1111 1111").decode()}


@pytest.fixture
def nodes(vault_factory: Callable[[], Any]) -> Iterator[tuple[TestClient, TestClient]]:
    first, second = vault_factory(), vault_factory()
    with (
        TestClient(create_app(vault=first), client=("192.0.2.1", 1)) as a,
        TestClient(create_app(vault=second), client=("192.0.2.2", 2)) as b,
    ):
        yield a, b


def _refused_within(client: TestClient, headers: dict[str, str], limit: float) -> tuple[float, Any]:
    started = time.monotonic()
    while True:
        r = client.post("/v1/keys/pay/encrypt", json=BODY, headers=headers)
        elapsed = time.monotonic() - started
        if r.status_code != 200 or elapsed > limit:
            return elapsed, r
        time.sleep(0.01)


def _setup(a: TestClient, vault_admin_token: str) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {vault_admin_token}"}
    assert (
        a.post("/v1/keys", json={"name": "pay", "purpose": "encrypt", "tier": "high"}, headers=admin).status_code == 201
    )
    created = a.post(
        "/v1/clients",
        json={"name": "checkout", "role": "service", "grants": ["pay:encrypt,decrypt"]},
        headers=admin,
    )
    assert created.status_code == 201
    token = a.post("/v1/clients/checkout/token", headers=admin).json()["token"]
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("/v1/keys/pay/versions/1/compromise", "version 1 is compromised"),  # B has the key cached
        ("/v1/clients/checkout/suspend", "client 'checkout' is suspended"),  # B has the token cached
    ],
)
def test_a_change_on_a_is_refused_by_b_within_one_second(
    nodes: tuple[TestClient, TestClient], tokens: Any, change: str, reason: str
) -> None:
    a, b = nodes
    admin = {"Authorization": f"Bearer {tokens('root', 'admin')}"}
    svc = _setup(a, admin["Authorization"].split()[1])
    assert b.post("/v1/keys/pay/encrypt", json=BODY, headers=svc).status_code == 200
    assert a.post(change, headers=admin).status_code == 200
    elapsed, r = _refused_within(b, svc, 1.0)
    assert r.status_code == 403 and r.json()["reason"] == reason, (elapsed, r.text)
    assert elapsed < 1.0
