"""Figure: time from a connector's ``contain`` start to the leaked value proven dead, per connector type.

Each run makes a fresh leaked credential on a real system — moto (AWS, signatures checked),
an OpenBao dev server, a throwaway PostgreSQL cluster with scram-sha-256, the local Redis —
then times ``contain`` + ``prove_dead`` (the leaked value itself refused by its system).
Printed as min / median / max over N runs beside the seed's 0–1 h containment window.

    python bench/connector_contain.py [N]      # N runs per type, default 10
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.connectors.servers import bao_server, moto_server, postgres_server, redis_reason  # noqa: E402

from keyguard.connectors.config import parse_connector  # noqa: E402
from keyguard.connectors.registry import Connector, open_connector  # noqa: E402
from keyguard.connectors.secret import Secret  # noqa: E402

WINDOW = 3600.0  # the seed's 0–1 h "contain and revoke"
Setup = Callable[[], tuple[Any, Secret | None, list[str]]]  # -> (ref, leaked, samples)


def _time(conn: Connector, kind: str, setup: Setup, runs: int) -> tuple[list[float], int]:
    adapter = conn.adapter(kind)
    times, dead = [], 0
    for _ in range(runs):
        ref, leaked, samples = setup()
        start = time.perf_counter()
        adapter.contain(ref)
        proof = adapter.prove_dead(ref, leaked, samples)
        times.append(time.perf_counter() - start)
        dead += proof.is_dead
    return times, dead


def _aws(stack: contextlib.ExitStack) -> Iterator[tuple[str, Connector, str, Setup]]:
    moto = stack.enter_context(moto_server())
    if isinstance(moto, str):
        print(f"aws: skipped ({moto})")
        return
    import boto3

    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=moto.endpoint, region_name="us-east-1",
                            aws_access_key_id=moto.key_id, aws_secret_access_key=moto.secret)

    conn = open_connector(parse_connector("aws", {
        "type": "aws", "endpoint_url": moto.endpoint, "access_key_id_env": "I", "secret_access_key_env": "S"}),
        environ={"I": moto.key_id, "S": moto.secret})
    iam, kms = client("iam"), client("kms")

    def access_key() -> tuple[Any, Secret | None, list[str]]:
        user = "bench-" + secrets.token_hex(4)
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument='{"Version":"2012-10-17","Statement":'
                            '[{"Effect":"Allow","Action":"iam:GetUser","Resource":"*"}]}')
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return conn.adapter("access-key").ref(key["AccessKeyId"]), Secret(key["SecretAccessKey"]), []

    def kms_key() -> tuple[Any, Secret | None, list[str]]:
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        blob = base64.b64encode(kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]).decode()
        return conn.adapter("kms-key").ref(key_id), None, [blob]

    yield "aws access-key", conn, "access-key", access_key
    yield "aws kms-key", conn, "kms-key", kms_key


def _vault(stack: contextlib.ExitStack) -> Iterator[tuple[str, Connector, str, Setup]]:
    bao = stack.enter_context(bao_server())
    if isinstance(bao, str):
        print(f"vault: skipped ({bao})")
        return
    conn = open_connector(parse_connector("bao", {"type": "vault", "url": bao.address, "token_env": "T",
                                                  "audit_log": str(bao.audit_log)}),
                          environ={"T": bao.token})
    api = httpx.Client(base_url=f"{bao.address}/v1", headers={"X-Vault-Token": bao.token})

    def token() -> tuple[Any, Secret | None, list[str]]:
        auth = api.post("/auth/token/create", json={"policies": ["default"]}).json()["auth"]
        return conn.adapter("token").ref(auth["accessor"]), Secret(auth["client_token"]), []

    def transit() -> tuple[Any, Secret | None, list[str]]:
        name = "bench-" + secrets.token_hex(4)
        api.post(f"/transit/keys/{name}")
        ct = api.post(f"/transit/encrypt/{name}", json={"plaintext": "eA=="}).json()["data"]["ciphertext"]
        return conn.adapter("transit").ref(name), None, [ct]

    yield "vault token", conn, "token", token
    yield "vault transit", conn, "transit", transit


def _postgres(stack: contextlib.ExitStack) -> Iterator[tuple[str, Connector, str, Setup]]:
    pg = stack.enter_context(postgres_server())
    if isinstance(pg, str):
        print(f"postgresql: skipped ({pg})")
        return
    dsn = f"host=127.0.0.1 port={pg.port} dbname=postgres user=postgres"
    conn = open_connector(parse_connector("pg", {"type": "postgresql", "dsn": dsn, "password_env": "P"}),
                          environ={"P": pg.password})
    admin = psycopg.connect(dsn, password=pg.password, autocommit=True)

    def role() -> tuple[Any, Secret | None, list[str]]:
        name, password = "bench_" + secrets.token_hex(4), secrets.token_urlsafe(12)
        admin.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            psycopg.sql.Identifier(name), psycopg.sql.Literal(password)))
        return conn.adapter("role").ref(name), Secret(password), []

    yield "postgresql role", conn, "role", role


def _redis(stack: contextlib.ExitStack) -> Iterator[tuple[str, Connector, str, Setup]]:
    reason = redis_reason()
    if reason:
        print(f"redis: skipped ({reason})")
        return
    root = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    made: list[str] = []
    stack.callback(lambda: [root.execute_command("ACL", "DELUSER", n) for n in made])
    admin_name, admin_pw = "bench-admin-" + secrets.token_hex(4), secrets.token_urlsafe(12)
    root.execute_command("ACL", "SETUSER", admin_name, "on", ">" + admin_pw, "~*", "&*", "+@all")
    made.append(admin_name)
    conn = open_connector(parse_connector("redis", {"type": "redis", "url": "redis://127.0.0.1:6379/0",
                                                    "username": admin_name, "password_env": "P"}),
                          environ={"P": admin_pw})

    def user() -> tuple[Any, Secret | None, list[str]]:
        name, password = "bench-" + secrets.token_hex(4), secrets.token_urlsafe(12)
        root.execute_command("ACL", "SETUSER", name, "on", ">" + password, "+ping")
        made.append(name)
        return conn.adapter("user").ref(name), Secret(password), []

    yield "redis user", conn, "user", user


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    print(f"contain start → leaked value proven dead, {runs} runs per type (seed SLA: 0–1 h = {WINDOW:.0f} s)")
    print(f"{'connector':<18} {'min':>9} {'median':>9} {'max':>9}  {'dead':>6}  share of the 1 h window")
    with contextlib.ExitStack() as stack:
        for source in (_aws, _vault, _postgres, _redis):
            for label, conn, kind, setup in source(stack):
                times, dead = _time(conn, kind, setup, runs)
                med = statistics.median(times)
                note = "" if dead == runs else "  (moto decrypts under a disabled key: not provable there)" \
                    if kind == "kms-key" else "  (NOT all proven dead)"
                print(f"{label:<18} {min(times) * 1000:>7.1f}ms {med * 1000:>7.1f}ms {max(times) * 1000:>7.1f}ms"
                      f"  {dead:>2}/{runs:<3}  {med / WINDOW:.6%}{note}")


if __name__ == "__main__":
    main()
