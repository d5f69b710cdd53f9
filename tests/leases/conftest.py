"""Real PostgreSQL and Redis targets for dynamic credentials: a throwaway database with a
template role, a template ACL user; everything they create is dropped afterwards."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from keyguard.clock import FrozenClock
from keyguard.connectors.config import ConnectorConfig, parse_connector
from keyguard.connectors.leases import LeaseManager
from tests.conftest import PG_ADMIN_URL, pg_skip_reason


@dataclass
class PgTarget:
    """A database with table ``items`` that the template role may SELECT (and nothing else)."""

    dbname: str
    template: str
    dsn: str

    def connector(self, name: str = "pg", **role: str) -> ConnectorConfig:
        """A ``postgresql`` connector with role ``readonly`` on the template."""
        spec = {"template": self.template, "default_ttl": "15m", "max_ttl": "1h", **role}
        return parse_connector(name, {"type": "postgresql", "dsn": self.dsn, "roles": {"readonly": spec}})


@pytest.fixture
def pg_target() -> Iterator[PgTarget]:
    reason = pg_skip_reason()
    if reason:
        pytest.skip(reason)
    import psycopg

    tag = secrets.token_hex(4)
    dbname, template = f"kg_lt_{tag}", f"kg_tmpl_{tag}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
        conn.execute(f'CREATE ROLE "{template}" NOLOGIN')
    target_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{dbname}"
    with psycopg.connect(target_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int, name text)")
        conn.execute("INSERT INTO items VALUES (1, 'one')")
        conn.execute(f'GRANT SELECT ON items TO "{template}"')
    try:
        yield PgTarget(dbname, template, f"host=127.0.0.1 port=5432 dbname={dbname} user=postgres")
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            members = conn.execute(
                "SELECT m.rolname FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member "
                "JOIN pg_roles t ON t.oid = a.roleid WHERE t.rolname = %s", (template,)).fetchall()
            for (member,) in members:
                conn.execute(f'DROP ROLE IF EXISTS "{member}"')
            conn.execute(f'DROP ROLE IF EXISTS "{template}"')


def pg_role_exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None


@dataclass
class RedisTarget:
    """A template ACL user (off) allowed GET/SET on ``<prefix>:*``; roles named uniquely."""

    template: str
    prefix: str
    role: str

    def connector(self, name: str = "cache", **role: str) -> ConnectorConfig:
        spec = role or {"template": self.template}
        return parse_connector(name, {"type": "redis", "url": "redis://127.0.0.1:6379/0", "roles": {self.role: spec}})


@pytest.fixture
def redis_target() -> Iterator[RedisTarget]:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        pytest.skip(f"Redis unreachable at 127.0.0.1:6379: {type(exc).__name__}")
    tag = secrets.token_hex(4)
    template, prefix, role = f"kg_tmpl_{tag}", f"kgt{tag}", f"c{tag}"
    client.execute_command("ACL", "SETUSER", template, "reset", "off", f"~{prefix}:*", "+get", "+set")  # type: ignore[no-untyped-call]
    try:
        yield RedisTarget(template, prefix, role)
    finally:
        for user in client.execute_command("ACL", "USERS"):  # type: ignore[no-untyped-call]
            name = user.decode()
            if name == template or name.startswith(f"kg_{role}_"):
                client.execute_command("ACL", "DELUSER", name)  # type: ignore[no-untyped-call]
        client.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC))


@pytest.fixture
def leases(vault: Any, clock: FrozenClock) -> Iterator[Callable[..., LeaseManager]]:
    """Lease managers on the vault's database (SQLite and PostgreSQL) over the given connectors."""
    made: list[LeaseManager] = []

    def make(*connectors: ConnectorConfig, **options: Any) -> LeaseManager:
        manager = LeaseManager(vault.engine, vault.audit, {c.name: c for c in connectors}, clock=clock, **options)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close()


def audit_events(vault: Any, op_prefix: str = "lease.") -> list[dict[str, Any]]:
    from keyguard.audit.reading import iter_events

    return [e for e in iter_events(vault.engine) if str(e["op"]).startswith(op_prefix)]
