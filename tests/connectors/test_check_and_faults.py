"""``connector check`` on each real system, and faults: unreachable, refused, missing permission.

Every error is one line, maps to SPEC §4's exit code, and never carries a connector credential:
not in the message, the hint, the exception chain, or any log record at DEBUG.
"""

from __future__ import annotations

import json
import logging
import secrets
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis

from keyguard.connectors.base import CheckReport
from keyguard.connectors.config import parse_connector
from keyguard.connectors.errors import MissingPermissionError, UnreachableError
from keyguard.connectors.registry import open_connector
from keyguard.errors import KeyguardError, RefusedError

from .aws_helpers import admin, leaked_user
from .conftest import unique
from .servers import Bao, Moto, Postgres, free_port, redis_reason

pytestmark = pytest.mark.slow


def _fails(caplog: pytest.LogCaptureFixture, fn: Callable[[], Any], credential: str,
           kind: type[KeyguardError], exit_code: int) -> KeyguardError:
    """Run ``fn``; it must raise ``kind`` with ``exit_code``, one line, and ``credential`` nowhere."""
    caplog.set_level(logging.DEBUG)
    with pytest.raises(KeyguardError) as caught:
        fn()
    exc = caught.value
    assert isinstance(exc, kind), f"{type(exc).__name__}: {exc}"
    assert exc.exit_code == exit_code
    assert "\n" not in str(exc) and "\n" not in exc.hint
    shown = "".join(traceback.format_exception(exc)) + repr(exc) + exc.hint
    assert credential not in shown
    assert all(credential not in r.getMessage() for r in caplog.records)
    return exc


def _assert_report(report: CheckReport, credential: str) -> None:
    assert credential not in json.dumps([report.problem, report.identity,
                                         [(p.name, p.detail) for p in report.permissions]])


# -- AWS ---------------------------------------------------------------------------------------------

def _aws(endpoint: str, key_id: str, secret: str) -> Any:
    config = parse_connector("aws-x", {"type": "aws", "endpoint_url": endpoint, "timeout": 2,
                                       "access_key_id_env": "ID", "secret_access_key_env": "SECRET"})
    return open_connector(config, environ={"ID": key_id, "SECRET": secret})


def test_aws_check_admin(moto: Moto) -> None:
    report = _aws(moto.endpoint, moto.key_id, moto.secret).check()
    assert report.is_reachable and report.identity.endswith(":user/keyguard-admin")
    assert report.missing == ()
    report.raise_for_problem()
    _assert_report(report, moto.secret)


def test_aws_missing_permission_names_it(moto: Moto, caplog: pytest.LogCaptureFixture) -> None:
    user, key_id, secret = leaked_user(moto, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iam:ListUsers", "iam:ListAccessKeys", "sts:*"], "Resource": "*"}]})
    _, victim, _ = leaked_user(moto)
    conn = _aws(moto.endpoint, key_id, secret)
    report = conn.check()
    assert report.is_reachable and "kms:ListKeys" in report.missing and "iam:ListUsers" not in report.missing
    _fails(caplog, report.raise_for_problem, secret, MissingPermissionError, 3)
    adapter = conn.adapter("access-key")
    exc = _fails(caplog, lambda: adapter.contain(adapter.ref(victim)), secret, MissingPermissionError, 3)
    assert "iam:UpdateAccessKey" in str(exc)
    _assert_report(report, secret)


def test_aws_refused_and_unreachable(moto: Moto, caplog: pytest.LogCaptureFixture) -> None:
    wrong = secrets.token_urlsafe(30)
    conn = _aws(moto.endpoint, moto.key_id, wrong)
    _fails(caplog, lambda: conn.adapter("kms-key").inventory(), wrong, RefusedError, 3)
    refused = conn.check()
    assert refused.is_reachable and "refused the connector's own credentials" in refused.problem
    _fails(caplog, refused.raise_for_problem, wrong, RefusedError, 3)
    dead = _aws(f"http://127.0.0.1:{free_port()}", moto.key_id, wrong)
    _fails(caplog, lambda: dead.adapter("access-key").inventory(), wrong, UnreachableError, 10)
    report = dead.check()
    assert not report.is_reachable and "cannot reach" in report.problem
    _fails(caplog, report.raise_for_problem, wrong, UnreachableError, 10)
    assert admin(moto, "sts").get_caller_identity()  # the server is fine: only the connector was wrong


# -- Vault / OpenBao ---------------------------------------------------------------------------------

def _vault(url: str, token: str) -> Any:
    config = parse_connector("bao-x", {"type": "vault", "url": url, "token_env": "T", "timeout": 2})
    return open_connector(config, environ={"T": token})


def test_vault_check_and_faults(bao: Bao, caplog: pytest.LogCaptureFixture) -> None:
    assert _vault(bao.address, bao.token).check().missing == ()
    headers = {"X-Vault-Token": bao.token}
    httpx.put(f"{bao.address}/v1/sys/policies/acl/kg-readonly", headers=headers,
              json={"policy": 'path "secret/*" { capabilities = ["read", "list"] }'}).raise_for_status()
    limited = httpx.post(f"{bao.address}/v1/auth/token/create", headers=headers,
                         json={"policies": ["kg-readonly"]}).json()["auth"]["client_token"]
    report = _vault(bao.address, limited).check()
    assert report.is_reachable and "update on auth/token/revoke-accessor" in report.missing
    _fails(caplog, report.raise_for_problem, limited, MissingPermissionError, 3)
    conn = _vault(bao.address, limited)
    exc = _fails(caplog, lambda: conn.adapter("transit").contain(conn.adapter("transit").ref("payments")),
                 limited, MissingPermissionError, 3)
    assert "transit/keys/payments" in str(exc)
    bad = "s." + secrets.token_urlsafe(18)
    _fails(caplog, lambda: _vault(bao.address, bad).adapter("kv").rotate(
        _vault(bao.address, bad).adapter("kv").ref("app/db")), bad, RefusedError, 3)
    dead = _vault(f"http://127.0.0.1:{free_port()}", bao.token)
    _fails(caplog, lambda: dead.adapter("transit").inventory(), bao.token, UnreachableError, 10)
    assert not dead.check().is_reachable


# -- PostgreSQL --------------------------------------------------------------------------------------

def _pg(postgres: Postgres, password: str, port: int | None = None) -> Any:
    config = parse_connector("pg-x", {"type": "postgresql", "password_env": "P", "timeout": 2,
                                      "dsn": f"host=127.0.0.1 port={port or postgres.port} dbname=postgres "
                                             "user=postgres"})
    return open_connector(config, environ={"P": password})


def test_postgres_check_and_faults(postgres: Postgres, caplog: pytest.LogCaptureFixture) -> None:
    report = _pg(postgres, postgres.password).check()
    assert report.is_reachable and report.identity == "postgres" and report.missing == ()
    wrong = "wrong-" + secrets.token_hex(8)
    conn = _pg(postgres, wrong)
    _fails(caplog, lambda: conn.adapter("role").inventory(), wrong, RefusedError, 3)
    assert conn.check().is_reachable and "refused" in conn.check().problem
    dead = _pg(postgres, postgres.password, free_port())
    _fails(caplog, lambda: dead.adapter("role").inventory(), postgres.password, UnreachableError, 10)
    _fails(caplog, lambda: _pg(postgres, postgres.password).adapter("role").contain(
        _pg(postgres, postgres.password).adapter("role").ref("no_such_role")), postgres.password, KeyguardError, 4)


# -- Redis -------------------------------------------------------------------------------------------

@pytest.fixture
def redis_user() -> Iterator[Callable[[str], tuple[str, str]]]:
    reason = redis_reason()
    if reason:
        pytest.skip(reason)
    root = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    made: list[str] = []

    def make(rules: str) -> tuple[str, str]:
        name, password = unique("kg-x"), secrets.token_urlsafe(16)
        root.execute_command("ACL", "SETUSER", name, "on", ">" + password, *rules.split())
        made.append(name)
        return name, password

    yield make
    for name in made:
        root.execute_command("ACL", "DELUSER", name)


def _redis(user: str, password: str, port: int = 6379) -> Any:
    config = parse_connector("redis-x", {"type": "redis", "url": f"redis://127.0.0.1:{port}/0", "username": user,
                                         "password_env": "P", "timeout": 2})
    return open_connector(config, environ={"P": password})


def test_redis_check_and_faults(redis_user: Callable[[str], tuple[str, str]],
                                caplog: pytest.LogCaptureFixture) -> None:
    admin_name, admin_pw = redis_user("+@all ~* &*")
    assert _redis(admin_name, admin_pw).check().missing == ()
    name, password = redis_user("+acl|whoami +acl|users +acl|getuser +acl|dryrun +client|list")
    report = _redis(name, password).check()
    assert report.is_reachable and "ACL SETUSER" in report.missing and "ACL GETUSER" not in report.missing
    victim, _ = redis_user("+ping")
    conn = _redis(name, password)
    exc = _fails(caplog, lambda: conn.adapter("user").contain(conn.adapter("user").ref(victim)),
                 password, MissingPermissionError, 3)
    assert "ACL SETUSER" in str(exc)
    wrong = "wrong-" + secrets.token_hex(8)
    _fails(caplog, lambda: _redis(name, wrong).adapter("user").inventory(), wrong, RefusedError, 3)
    _fails(caplog, lambda: _redis(name, password, free_port()).adapter("user").inventory(), password,
           UnreachableError, 10)
