"""Dynamic Redis ACL users against the real server: rules from a template user or literal, revoke, expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis

from keyguard.connectors.dynamic_redis import rules_of_acl_line
from keyguard.errors import NotFoundError

from .conftest import RedisTarget, audit_events


def _as(user: str, password: str, probe: str) -> redis.Redis:
    client = redis.Redis(host="127.0.0.1", port=6379, username=user, password=password, socket_connect_timeout=2)
    client.get(probe)  # connects and authenticates
    return client


def _exists(user: str) -> bool:
    admin = redis.Redis(host="127.0.0.1", port=6379)
    try:
        return admin.execute_command("ACL", "GETUSER", user) is not None  # type: ignore[no-untyped-call]
    finally:
        admin.close()


def _clients_of(user: str) -> int:
    admin = redis.Redis(host="127.0.0.1", port=6379)
    try:
        listing = admin.execute_command("CLIENT", "LIST").decode()  # type: ignore[no-untyped-call]
        return sum(1 for line in listing.splitlines() if f" user={user} " in f" {line} ")
    finally:
        admin.close()


def test_rules_of_an_acl_line_drop_passwords_and_state() -> None:
    line = "user t off sanitize-payload #ab12 >plain ~app:* resetchannels (~x:* +get) -@all +get"
    assert rules_of_acl_line(line) == ["sanitize-payload", "~app:*", "resetchannels", "(~x:* +get)", "-@all", "+get"]


def test_issue_copies_the_template_users_rules(redis_target: RedisTarget, leases, vault) -> None:
    path = f"cache/role/{redis_target.role}"
    manager = leases(redis_target.connector())
    issued = manager.issue(path, timedelta(minutes=10), "tester")
    assert issued.username.startswith(f"kg_{redis_target.role}_")
    client = _as(issued.username, issued.password.reveal(), f"{redis_target.prefix}:x")
    try:
        client.set(f"{redis_target.prefix}:a", "1")
        assert client.get(f"{redis_target.prefix}:a") == b"1"
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.get("elsewhere")
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.delete(f"{redis_target.prefix}:a")
        manager.revoke(issued.lease_id, "responder")
        assert _clients_of(issued.username) == 0  # ACL DELUSER disconnected it
        with pytest.raises(redis.exceptions.ConnectionError):  # and a reconnect's AUTH is refused
            client.get(f"{redis_target.prefix}:a")
    finally:
        client.close()
    assert not _exists(issued.username)
    with pytest.raises(redis.exceptions.AuthenticationError):
        _as(issued.username, issued.password.reveal(), f"{redis_target.prefix}:x")
    assert [e["op"] for e in audit_events(vault)] == ["lease.issue", "lease.revoke"]


def test_literal_rules_and_expiry(redis_target: RedisTarget, leases, clock) -> None:
    path = f"cache/role/{redis_target.role}"
    manager = leases(redis_target.connector(rules=f"~{redis_target.prefix}:* +get"))
    issued = manager.issue(path, timedelta(minutes=1), "tester")
    client = _as(issued.username, issued.password.reveal(), f"{redis_target.prefix}:x")
    try:
        assert client.get(f"{redis_target.prefix}:none") is None
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.set(f"{redis_target.prefix}:a", "1")
    finally:
        client.close()
    clock.advance(timedelta(minutes=2))
    assert manager.reap().expired == [issued.lease_id]
    assert not _exists(issued.username)


def test_a_missing_template_user_is_not_found(redis_target: RedisTarget, leases) -> None:
    manager = leases(redis_target.connector(template="kg_no_such_user"))
    with pytest.raises(NotFoundError, match="template ACL user"):
        manager.issue(f"cache/role/{redis_target.role}", None, "t")
    assert [x["state"] for x in manager.list_leases(all_states=True)] == ["failed"]
