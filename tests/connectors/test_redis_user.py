"""Redis ACL users on the local server (127.0.0.1:6379), one unique user per test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from keyguard.connectors.config import ConnectorConfig, parse_connector
from keyguard.connectors.registry import open_connector
from keyguard.connectors.secret import Secret

from .conftest import unique
from .servers import redis_reason

pytestmark = pytest.mark.slow
URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def admin_user() -> Iterator[tuple[ConnectorConfig, dict[str, str]]]:
    """A dedicated admin ACL user for the connector (not the default user)."""
    reason = redis_reason(URL)
    if reason:
        pytest.skip(reason)
    root = redis.Redis.from_url(URL)
    name, password = unique("kg-admin"), secrets.token_urlsafe(16)
    root.execute_command("ACL", "SETUSER", name, "on", ">" + password, "~*", "&*", "+@all")
    config = parse_connector("redis", {"type": "redis", "url": URL, "username": name, "password_env": "KG_T_REDIS"})
    try:
        yield config, {"KG_T_REDIS": password}
    finally:
        root.execute_command("ACL", "DELUSER", name)
        root.close()


@pytest.fixture
def cache_user() -> Iterator[tuple[str, str]]:
    root = redis.Redis.from_url(URL)
    name, password = unique("cache"), "leaked-" + secrets.token_urlsafe(12)
    root.execute_command("ACL", "SETUSER", name, "on", ">" + password, "~cache:*", "+get", "+set", "+ping",
                         "+client|setname")
    try:
        yield name, password
    finally:
        root.execute_command("ACL", "DELUSER", name)
        root.close()


def _as(user: str, password: str) -> redis.Redis:
    client = redis.Redis.from_url(URL, username=user, password=password, client_name="cache-worker")
    client.ping()
    return client


def test_user_playbook(admin_user: tuple[ConnectorConfig, dict[str, str]], cache_user: tuple[str, str],
                       tmp_path: Path) -> None:
    config, env = admin_user
    user, leaked = cache_user
    before = datetime.now(UTC) - timedelta(seconds=2)
    session = _as(user, leaked)
    with pytest.raises(redis.exceptions.NoPermissionError):
        session.execute_command("KEYS", "*")  # a refused command lands in ACL LOG
    conn = open_connector(config, environ=env)
    assert [str(f.ref) for f in conn.identify(Secret(leaked))] == [f"redis/user/{user}"]
    assert conn.identify(Secret("nope")) == []
    adapter = conn.adapter("user")
    ref = adapter.ref(user)

    usage = adapter.usage_since(ref, before)
    ops = {(u.record["op"], u.record["result"]) for u in usage}
    assert ("redis:keys", "denied") in ops and ("redis:connection", "ok") in ops

    assert not adapter.prove_dead(ref, Secret(leaked)).is_dead
    outcome = adapter.contain(ref)
    assert outcome.detail["killed"] == 1
    with pytest.raises(redis.exceptions.ConnectionError):
        session.ping()
    proof = adapter.prove_dead(ref, Secret(leaked))
    assert proof.is_dead, proof.evidence
    whoami = redis.Redis.from_url(URL)
    with pytest.raises(redis.exceptions.AuthenticationError):  # AUTH, not redis-cli's fallback to default
        whoami.execute_command("AUTH", user, leaked)

    target = tmp_path / "cache.env"
    target.write_text(f"REDIS_URL=redis://{user}:{leaked}@cache:6379/0\n")
    rotation = adapter.rotate(ref)
    assert rotation.new_secret is not None
    adapter.deliver(rotation, [target], Secret(leaked))
    assert rotation.new_secret.reveal() in target.read_text()
    consumer = _as(user, rotation.new_secret.reveal())
    assert adapter.consumers_switched(rotation).is_switched
    adapter.retire(rotation)
    info = redis.Redis.from_url(URL).acl_getuser(user)
    passwords = info["passwords"]
    assert len(passwords) == 1  # the contained random one is gone, the new one stays
    consumer.ping()
    consumer.close()
