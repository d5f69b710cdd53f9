"""Figures: the whole ``respond --resource`` playbook per connector type, and ``scan --identify``'s overhead.

1. For each type, a fresh leaked credential on a real system per round (moto with signatures
   checked, an OpenBao dev server, a throwaway scram-sha-256 PostgreSQL, the local Redis),
   then the playbook through :func:`keyguard.response.resource_respond.respond_resource`
   (open → contain → prove dead → assess → rotate → consumers check → retire; reports off):
   time to proven dead and the whole playbook, min / median / max, beside the seed's 0–1 h
   containment window.
2. A git repository with 100 planted credentials of these systems (25 each); ``keyguard scan
   --git`` with and without ``--identify`` (the CLI, as a user runs it), min / median / max.

    python bench/connector_playbook.py [ROUNDS]     # default 3
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import fresh_sqlite  # noqa: E402
from connector_contain import WINDOW, _aws, _postgres, _redis, _vault  # noqa: E402

from keyguard.connectors.sealed import SealedStore  # noqa: E402
from keyguard.incident.service import IncidentService  # noqa: E402
from keyguard.response.resource import ResourceResponder, leaked_field  # noqa: E402
from keyguard.response.resource_data import register_ciphertext  # noqa: E402
from keyguard.response.resource_respond import respond_resource  # noqa: E402
from keyguard.vault.roots import KeyFileRoot  # noqa: E402
from keyguard.vault.service import Vault  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3


def _fmt(values: list[float]) -> str:
    return " ".join(f"{v * 1000:>8.0f}ms" for v in (min(values), statistics.median(values), max(values)))


def playbooks(stack: contextlib.ExitStack) -> dict[str, object]:
    """Time the playbook per type; returns the open connectors by name (reused by the scan figure)."""
    engine, home = fresh_sqlite("kg-bench-playbook-")
    vault = Vault.initialize(engine, KeyFileRoot.create(home / "root.key"))
    store = SealedStore(home / "connectors.sealed", vault.barrier)
    incidents = IncidentService(engine, vault.clock)
    print(f"respond --resource, {ROUNDS} rounds per type (seed SLA: contain within 0–1 h = {WINDOW:.0f} s)")
    print(f"{'connector':<17} {'to proven dead: min/median/max':>33} {'whole playbook: min/median/max':>33}"
          "  dead  share of 1 h")
    opened: dict[str, object] = {}
    for source in (_aws, _vault, _postgres, _redis):
        for label, conn, _kind, setup in source(stack):
            opened[conn.name] = conn
            responder = ResourceResponder(incidents, vault.audit, "bench", engine, {conn.name: conn}, store,
                                          home / "state")
            dead_times: list[float] = []
            totals: list[float] = []
            dead = 0
            for _ in range(ROUNDS):
                ref, leaked, samples = setup()
                if leaked is not None:
                    store.put(ref.connector, leaked_field(ref), leaked)
                for i, sample in enumerate(samples):  # made under the key: the rotation re-encrypts them
                    register_ciphertext(engine, ref, f"{ref}#{i}", "other", 1, sample, vault.clock.now())
                start = time.perf_counter()
                result = respond_resource(responder, ref, vault.clock.now() - timedelta(hours=2))
                totals.append(time.perf_counter() - start)
                contain = next(s for s in result.steps if s["step"] == "contain")
                dead_times.append(result.contained_seconds)
                dead += bool(contain.get("proof", {}).get("is_dead"))
            note = "  (moto decrypts under a disabled key)" if "kms" in label else ""
            print(f"{label:<17} {_fmt(dead_times):>33} {_fmt(totals):>33}  {dead}/{ROUNDS}"
                  f"  {statistics.median(dead_times) / WINDOW:.5%}{note}")
    return opened


def _plant(stack: contextlib.ExitStack, repo: Path) -> str:
    """100 credentials of the four systems committed to ``repo``; returns the keyguard.toml connectors."""
    import secrets

    import boto3
    import httpx
    import psycopg
    import redis
    from tests.connectors.servers import bao_server, moto_server, postgres_server

    moto, bao, pg = (stack.enter_context(s()) for s in (moto_server, bao_server, postgres_server))
    if any(isinstance(x, str) for x in (moto, bao, pg)):
        raise SystemExit("scan figure skipped: a server did not start")
    assert not isinstance(moto, str) and not isinstance(bao, str) and not isinstance(pg, str)
    iam = boto3.client("iam", endpoint_url=moto.endpoint, region_name="us-east-1",
                       aws_access_key_id=moto.key_id, aws_secret_access_key=moto.secret)
    lines: list[str] = []
    for i in range(25):
        user = f"scan-{i}-{secrets.token_hex(3)}"
        iam.create_user(UserName=user)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        lines += [f"AWS_ACCESS_KEY_ID_{i}={key['AccessKeyId']}", f"AWS_SECRET_ACCESS_KEY_{i}={key['SecretAccessKey']}"]
        token = httpx.post(f"{bao.address}/v1/auth/token/create", json={"policies": ["default"]},
                           headers={"X-Vault-Token": bao.token}).json()["auth"]["client_token"]
        lines.append(f"VAULT_TOKEN_{i}={token}")
    admin = psycopg.connect(host="127.0.0.1", port=pg.port, dbname="postgres", user="postgres", password=pg.password,
                            autocommit=True)
    root = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    admin_name, admin_pw = "scan-admin-" + secrets.token_hex(3), secrets.token_urlsafe(12)
    root.execute_command("ACL", "SETUSER", admin_name, "on", ">" + admin_pw, "~*", "&*", "+@all")
    made = [admin_name]
    stack.callback(lambda: [root.execute_command("ACL", "DELUSER", n) for n in made])
    for i in range(25):
        role, pw = f"scan_{i}_{secrets.token_hex(3)}", "pg-" + secrets.token_urlsafe(12)
        admin.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            psycopg.sql.Identifier(role), psycopg.sql.Literal(pw)))
        lines.append(f"DATABASE_URL_{i}=postgresql://{role}:{pw}@127.0.0.1:{pg.port}/postgres")
        name, rpw = f"scan-{i}-{secrets.token_hex(3)}", "rd-" + secrets.token_urlsafe(12)
        root.execute_command("ACL", "SETUSER", name, "on", ">" + rpw, "+ping")
        made.append(name)
        lines.append(f"REDIS_URL_{i}=redis://{name}:{rpw}@127.0.0.1:6379/0")
    (repo / "deploy.env").write_text("\n".join(lines) + "\n")
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@x", GIT_COMMITTER_NAME="b",
               GIT_COMMITTER_EMAIL="b@x")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "add", "."], cwd=repo, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "plant"], cwd=repo, check=True, env=env)
    os.environ.update(KG_B_AWS_ID=moto.key_id, KG_B_AWS_SECRET=moto.secret, KG_B_BAO=bao.token,
                      KG_B_PG=pg.password, KG_B_REDIS=admin_pw)
    return (f'[connectors.aws]\ntype = "aws"\nendpoint_url = "{moto.endpoint}"\naccess_key_id_env = "KG_B_AWS_ID"\n'
            'secret_access_key_env = "KG_B_AWS_SECRET"\n\n'
            f'[connectors.bao]\ntype = "vault"\nurl = "{bao.address}"\ntoken_env = "KG_B_BAO"\n\n'
            f'[connectors.pg]\ntype = "postgresql"\ndsn = "host=127.0.0.1 port={pg.port} dbname=postgres '
            'user=postgres"\npassword_env = "KG_B_PG"\n\n'
            f'[connectors.cache]\ntype = "redis"\nurl = "redis://127.0.0.1:6379/0"\nusername = "{admin_name}"\n'
            'password_env = "KG_B_REDIS"\n')


def scan_overhead(stack: contextlib.ExitStack) -> None:
    """``scan --git`` against ``scan --git --identify`` on 100 planted credentials."""
    work = Path(tempfile.mkdtemp(prefix="kg-bench-identify-"))
    repo = work / "repo"
    repo.mkdir()
    config = _plant(stack, repo)
    env = dict(os.environ, KEYGUARD_HOME=str(work / "home"), PYTHONPATH=str(Path(__file__).resolve().parents[1]
                                                                              / "src"))
    env.pop("KEYGUARD_DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "keyguard", "init"], env=env, check=True, capture_output=True)
    (work / "home" / "keyguard.toml").write_text(config)
    times: dict[str, list[float]] = {"scan --git": [], "scan --git --identify": []}
    identified = 0
    for _ in range(ROUNDS):
        for label, extra in (("scan --git", []), ("scan --git --identify", ["--identify"])):
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "keyguard", "scan", "--git", str(repo), "--format", "json",
                                   *extra], env=env, capture_output=True, text=True)
            times[label].append(time.perf_counter() - start)
            if extra:
                import json

                identified = sum(1 for f in json.loads(done.stdout) if f["resource"])
    print(f"\nscan of a repository with 100 planted credentials (125 findings), {ROUNDS} rounds")
    for label, values in times.items():
        print(f"{label:<24} {_fmt(values)}")
    plain, ident = statistics.median(times["scan --git"]), statistics.median(times["scan --git --identify"])
    print(f"--identify overhead (median): {ident - plain:.2f} s, {(ident - plain) / 125 * 1000:.0f} ms per finding; "
          f"{identified} of 125 findings given a resource")


def main() -> None:
    with contextlib.ExitStack() as stack:
        playbooks(stack)
    with contextlib.ExitStack() as stack:
        scan_overhead(stack)


if __name__ == "__main__":
    main()
