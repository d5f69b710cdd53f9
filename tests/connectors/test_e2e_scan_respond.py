"""Issue 11's "done when": four credentials in old commits → scan --identify --open-incident → respond --resource.

An AWS access key (moto), an OpenBao token (bao dev), a PostgreSQL role password (a
throwaway scram cluster) and a Redis ACL user password are committed to a git repository
and also sit in a consumer's env file. After the scan and one ``respond --resource … --yes``
per incident, every leaked value is refused by its own system, the consumer's file holds
new values that work, the assessment recorded the leaked credential's use, and the audit
log has every step with the reference and verifies.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from .aws_helpers import admin, as_key, leaked_user
from .conftest import unique
from .servers import Bao, Moto, Postgres, redis_reason

pytestmark = pytest.mark.slow
REDIS_URL = "redis://127.0.0.1:6379/0"


def _git(repo: Path, *args: str, date: str) -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME="Dana Dev", GIT_AUTHOR_EMAIL="dana@example.com",
               GIT_COMMITTER_NAME="Dana Dev", GIT_COMMITTER_EMAIL="dana@example.com",
               GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


@pytest.fixture
def redis_admin() -> Iterator[tuple[str, str]]:
    reason = redis_reason(REDIS_URL)
    if reason:
        pytest.skip(reason)
    root = redis.Redis.from_url(REDIS_URL)
    name, password = unique("kg-admin"), secrets.token_urlsafe(16)
    root.execute_command("ACL", "SETUSER", name, "on", ">" + password, "~*", "&*", "+@all")
    try:
        yield name, password
    finally:
        root.execute_command("ACL", "DELUSER", name)
        root.close()


@pytest.fixture
def redis_user() -> Iterator[tuple[str, str]]:
    root = redis.Redis.from_url(REDIS_URL)
    name, password = unique("cache"), "leaked-" + secrets.token_urlsafe(12)
    root.execute_command("ACL", "SETUSER", name, "on", ">" + password, "~cache:*", "+get", "+set", "+ping")
    try:
        yield name, password
    finally:
        root.execute_command("ACL", "DELUSER", name)
        root.close()


def _bao(bao: Bao, method: str, path: str, body: Any = None, token: str | None = None) -> httpx.Response:
    return httpx.request(method, f"{bao.address}/v1/{path}", json=body,
                         headers={"X-Vault-Token": token or bao.token}, timeout=10)


def _pg_login(postgres: Postgres, role: str, password: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=postgres.host, port=postgres.port, dbname="postgres", user=role, password=password,
                           autocommit=True, connect_timeout=5)


def _env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_scan_identify_open_incident_then_respond_for_each(  # noqa: PLR0915 - one story, told in order
    tmp_path: Path, moto: Moto, bao: Bao, postgres: Postgres, redis_admin: tuple[str, str],
    redis_user: tuple[str, str],
) -> None:
    # -- the four leaked credentials, on real systems
    user, key_id, key_secret = leaked_user(moto)
    _bao(bao, "PUT", "sys/policies/acl/app", {"policy": 'path "secret/*" { capabilities = ["read"] }'})
    token = _bao(bao, "POST", "auth/token/create", {"policies": ["app"], "display_name": "ci"}).json()["auth"]
    vault_token = str(token["client_token"])
    _bao(bao, "GET", "auth/token/lookup-self", token=vault_token).raise_for_status()  # a use the audit device logs
    role, pg_password = unique("billing").replace("-", "_"), "pg-" + secrets.token_urlsafe(14)
    with psycopg.connect(host=postgres.host, port=postgres.port, dbname="postgres", user="postgres",
                         password=postgres.password, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            psycopg.sql.Identifier(role), psycopg.sql.Literal(pg_password)))
    _pg_login(postgres, role, pg_password).close()  # a login the server log records
    redis_name, redis_password = redis_user
    dsn = f"postgresql://{role}:{pg_password}@{postgres.host}:{postgres.port}/postgres"
    redis_url = f"redis://{redis_name}:{redis_password}@127.0.0.1:6379/0"
    leaked_env = (f"AWS_ACCESS_KEY_ID={key_id}\nAWS_SECRET_ACCESS_KEY={key_secret}\nVAULT_TOKEN={vault_token}\n"
                  f"DATABASE_URL={dsn}\nREDIS_URL={redis_url}\n")

    # -- committed in old commits, removed since; the consumer still reads them from its env file
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "app.env").write_text(leaked_env)
    _git(repo, "add", ".", date="2026-11-20T09:00:00Z")
    _git(repo, "commit", "-qm", "config", date="2026-11-20T09:00:00Z")
    (repo / "app.env").write_text("# moved to the secret store\n")
    _git(repo, "commit", "-qam", "remove config", date="2026-11-21T09:00:00Z")
    consumer = tmp_path / "consumer"
    consumer.mkdir()
    (consumer / "app.env").write_text(leaked_env)
    (consumer / "app.env").chmod(0o640)

    # -- keyguard with four connectors (three from the environment, Redis's password sealed)
    home = tmp_path / "home"
    env = dict(os.environ, KEYGUARD_HOME=str(home), KEYGUARD_DATABASE_URL=f"sqlite:///{tmp_path / 'kg.db'}",
               KG_AWS_ID=moto.key_id, KG_AWS_SECRET=moto.secret, KG_BAO=bao.token, KG_PG=postgres.password)
    env.pop("KEYGUARD_TOKEN", None)

    def kg(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "keyguard", *args], env=env, input=stdin,
                              capture_output=True, text=True, timeout=300)

    assert kg("init").returncode == 0
    (home / "keyguard.toml").write_text(
        f'[rollout]\nroots = ["{consumer}"]\n\n'
        f'[connectors.aws]\ntype = "aws"\nendpoint_url = "{moto.endpoint}"\nregion = "us-east-1"\n'
        'access_key_id_env = "KG_AWS_ID"\nsecret_access_key_env = "KG_AWS_SECRET"\n\n'
        f'[connectors.bao]\ntype = "vault"\nurl = "{bao.address}"\ntoken_env = "KG_BAO"\n'
        f'audit_log = "{bao.audit_log}"\n\n'
        f'[connectors.pg]\ntype = "postgresql"\n'
        f'dsn = "host={postgres.host} port={postgres.port} dbname=postgres user=postgres"\n'
        f'password_env = "KG_PG"\nlog_file = "{postgres.log_file}"\n')
    added = kg("connector", "add", "cache", "--type", "redis", "--set", f"url={REDIS_URL}",
               "--set", f"username={redis_admin[0]}", "--secret-stdin", "password", stdin=redis_admin[1])
    assert added.returncode == 0, added.stderr
    assert redis_admin[1] not in (home / "keyguard.toml").read_text()
    assert redis_admin[1].encode() not in (home / "connectors.sealed").read_bytes()
    assert (home / "connectors.sealed").stat().st_mode & 0o777 == 0o600
    for name in ("aws", "bao", "pg", "cache"):
        checked = kg("connector", "check", name)
        assert checked.returncode == 0, (name, checked.stdout, checked.stderr)

    # -- scan the history: each finding names its owner, one incident per resource
    scanned = kg("scan", "--git", str(repo), "--identify", "--open-incident", "--format", "json")
    assert scanned.returncode == 1, scanned.stderr
    findings = json.loads(scanned.stdout)
    owners = {f["rule"]: f["resource"] for f in findings}
    accessor = str(token["accessor"])
    expected = {
        "aws-access-key-id": f"aws/access-key/{key_id}",
        "aws-secret-access-key": f"aws/access-key/{key_id}",
        "hashicorp-vault-legacy-token" if vault_token.startswith("s.") else "hashicorp-vault-token":
            f"bao/token/{accessor}",
        "postgres-url-password": f"pg/role/{role}",
        "redis-url-password": f"cache/user/{redis_name}",
    }
    assert owners == expected
    refs = sorted(set(expected.values()))
    for ref in refs:
        assert f"opened for {ref}" in scanned.stderr
    for secret in (key_secret, vault_token, pg_password, redis_password):
        assert secret not in scanned.stdout + scanned.stderr
    listed = json.loads(kg("incident", "list", "--json").stdout)
    assert len(listed) == 4
    assert all(i["exposed_at"].startswith("2026-11-20T09:00:00") for i in listed)

    # -- respond to each
    results = {}
    for ref in refs:
        done = kg("respond", "--resource", ref, "--target", str(consumer / "app.env"), "--yes", "--json")
        assert done.returncode in (0, 1), (ref, done.stderr)
        results[ref] = json.loads(done.stdout)
        assert results[ref]["resource"] == ref

    # -- every leaked value is refused by its own system
    iam = admin(moto, "iam")
    statuses = {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}
    assert statuses.get(key_id, "deleted") in {"Inactive", "deleted"}
    assert _bao(bao, "GET", "auth/token/lookup-self", token=vault_token).status_code == 403
    with pytest.raises(psycopg.OperationalError):
        _pg_login(postgres, role, pg_password)
    probe = redis.Redis.from_url(REDIS_URL)
    with pytest.raises(redis.AuthenticationError):
        probe.execute_command("AUTH", redis_name, redis_password)
    probe.close()

    # -- the new values work where the consumer reads them
    now = _env_file(consumer / "app.env")
    assert now["AWS_ACCESS_KEY_ID"] != key_id and now["AWS_SECRET_ACCESS_KEY"] != key_secret
    assert as_key(moto, "sts", now["AWS_ACCESS_KEY_ID"], now["AWS_SECRET_ACCESS_KEY"]).get_caller_identity()
    assert pg_password not in now["DATABASE_URL"] and redis_password not in now["REDIS_URL"]
    new_pg = psycopg.conninfo.conninfo_to_dict(now["DATABASE_URL"])
    _pg_login(postgres, role, str(new_pg["password"])).close()
    fresh = redis.Redis.from_url(now["REDIS_URL"])
    assert fresh.ping()
    fresh.close()
    assert (consumer / "app.env").stat().st_mode & 0o777 == 0o640
    # a token cannot be re-issued by keyguard: the incident says how, as a manual task
    bao_incident = json.loads(kg("incident", "show", str(results[f"bao/token/{accessor}"]["incident"]),
                                 "--json").stdout)
    manual = {t["id"]: t for p in bao_incident["phases"] for t in p["tasks"] if t["id"].startswith("manual-")}
    assert "manual-rotate" in manual and "log in" in manual["manual-rotate"]["title"]["en"].lower()

    # -- the assessment lists what the leaked credentials did since the exposure
    pg_incident = json.loads(kg("incident", "show", str(results[f"pg/role/{role}"]["incident"]), "--json").stdout)
    assert pg_incident["impact"]["usage"]["events"] >= 1
    assert bao_incident["impact"]["usage"]["events"] >= 1
    assert pg_incident["impact"]["resource"] == f"pg/role/{role}"

    # -- every step in keyguard's audit log with the reference, and the chain verifies
    assert kg("audit", "verify").returncode == 0
    events = [json.loads(line) for line in kg("audit", "export", "--format", "jsonl").stdout.splitlines() if line]
    for ref in refs:
        ops = {e["op"] for e in events if (e.get("reason") or "").startswith(f"{ref}:")}
        assert {"connector.contain", "connector.prove_dead", "connector.usage_since", "connector.incident"} <= ops, ref
    log_text = json.dumps(events)
    for secret in (key_secret, vault_token, pg_password, redis_password, redis_admin[1], moto.secret):
        assert secret not in log_text
