"""PostgreSQL roles on a throwaway scram-sha-256 cluster with log_connections on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from keyguard.connectors import scram
from keyguard.connectors.config import ConnectorConfig, parse_connector
from keyguard.connectors.registry import open_connector
from keyguard.connectors.secret import Secret

from .conftest import unique
from .servers import Postgres

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_config(postgres: Postgres) -> tuple[ConnectorConfig, dict[str, str]]:
    config = parse_connector("pg", {
        "type": "postgresql", "dsn": f"host={postgres.host} port={postgres.port} dbname=postgres user=postgres",
        "password_env": "KG_T_PG_PASSWORD", "log_file": str(postgres.log_file),
    })
    return config, {"KG_T_PG_PASSWORD": postgres.password}


def _superuser(postgres: Postgres) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=postgres.host, port=postgres.port, dbname="postgres", user="postgres",
                           password=postgres.password, autocommit=True)


def _role(postgres: Postgres, password: str) -> str:
    name = unique("billing").replace("-", "_")
    with _superuser(postgres) as conn:
        conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            psycopg.sql.Identifier(name), psycopg.sql.Literal(password)))
    return name


def _login(postgres: Postgres, role: str, password: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=postgres.host, port=postgres.port, dbname="postgres", user=role, password=password,
                           autocommit=True, application_name="billing-worker")


def test_verifier_math_matches_the_server(postgres: Postgres) -> None:
    role = _role(postgres, "correct horse battery staple")
    with _superuser(postgres) as conn:
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
        assert row is not None
        assert scram.matches("correct horse battery staple", str(row[0]))
        assert not scram.matches("correct horse battery stapler", str(row[0]))
        mine = scram.make_verifier("ünïcode pässword")
        conn.execute(psycopg.sql.SQL("ALTER ROLE {} PASSWORD {}").format(
            psycopg.sql.Identifier(role), psycopg.sql.Literal(mine)))
    _login(postgres, role, "ünïcode pässword").close()  # the server accepts what we computed


def test_role_playbook(postgres: Postgres, pg_config: tuple[ConnectorConfig, dict[str, str]], tmp_path: Path) -> None:
    config, env = pg_config
    leaked = "leaked-" + unique("pw")
    role = _role(postgres, leaked)
    before = datetime.now(UTC) - timedelta(seconds=1)
    session = _login(postgres, role, leaked)  # the attacker's (or a consumer's) session
    conn = open_connector(config, environ=env)
    log_size = postgres.log_file.stat().st_size

    found = conn.identify(Secret(leaked))
    assert [str(f.ref) for f in found] == [f"pg/role/{role}"]
    assert conn.identify(Secret("not-the-password")) == []
    assert f"user={role}" not in postgres.log_file.read_text()[log_size:]  # identify never logged in as the role

    adapter = conn.adapter("role")
    ref = found[0].ref
    assert not adapter.prove_dead(ref, Secret(leaked)).is_dead
    outcome = adapter.contain(ref)
    assert outcome.detail["terminated"] == 1
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")
    proof = adapter.prove_dead(ref, Secret(leaked))
    assert proof.is_dead, proof.evidence
    assert "password authentication failed" in proof.evidence[1]

    usage = adapter.usage_since(ref, before)
    results = [(u.record["op"], u.record["result"]) for u in usage]
    assert ("postgresql:login", "ok") in results and ("postgresql:login", "denied") in results
    assert all(u.record["key"] == str(ref) for u in usage)
    ok = next(u for u in usage if u.record["result"] == "ok")
    assert ok.record["source_ip"] == "127.0.0.1" and ok.record["user_agent"] == "billing-worker"

    target = tmp_path / "db.env"
    target.write_text(f"DATABASE_URL=postgresql://{role}:{leaked}@db/app\n")
    rotation = adapter.rotate(ref)
    assert rotation.new_secret is not None
    adapter.deliver(rotation, [target], Secret(leaked))
    assert rotation.new_secret.reveal() in target.read_text() and leaked not in target.read_text()
    consumer = _login(postgres, role, rotation.new_secret.reveal())
    switched = adapter.consumers_switched(rotation)
    assert switched.is_switched, switched.evidence
    consumer.close()
    adapter.retire(rotation)
    assert adapter.prove_dead(ref, Secret(leaked)).is_dead


def test_inventory_lists_login_roles(postgres: Postgres, pg_config: tuple[ConnectorConfig, dict[str, str]]) -> None:
    config, env = pg_config
    role = _role(postgres, "inventory-pw")
    items = {i.ref.id: i for i in open_connector(config, environ=env).inventory()}
    assert items[role].detail["verifier"] == "SCRAM-SHA-256"
