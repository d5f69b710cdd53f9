"""Figures: time from a lease's expiry to its PostgreSQL user being gone, and dynamic credential issue rate.

A throwaway database with a template role on the local PostgreSQL (127.0.0.1:5432), a
fresh keyguard vault (SQLite, or ``--pg`` for its state on PostgreSQL too) and the
scheduler thread exactly as ``keyguard serve`` runs it. Expiry: each round issues a
credential with a 2 s TTL and polls ``pg_roles`` every 10 ms until the user is gone.
Issue rate: N credentials issued one after another (lease row, CREATE ROLE, confirmation
with its audit event), then ``lease revoke --prefix`` of all of them (the containment step).

    python bench/lease_expiry.py [ROUNDS] [ISSUES] [--pg]     # defaults 7 and 50
"""

from __future__ import annotations

import secrets
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keyguard.connectors.config import parse_connector  # noqa: E402
from keyguard.connectors.leases import LeaseManager  # noqa: E402
from keyguard.response.scheduler.service import Scheduler  # noqa: E402
from keyguard.store.db import create_db_engine, migrate  # noqa: E402
from keyguard.vault.roots import KeyFileRoot  # noqa: E402
from keyguard.vault.service import Vault  # noqa: E402

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
GOAL = 5.0  # issue 15: at most 5 s from expiry to the user being gone


def _exists(conn: psycopg.Connection, user: str) -> bool:  # type: ignore[type-arg]
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone() is not None


def _stats(values: list[float]) -> str:
    return f"min {min(values):.3f}  median {statistics.median(values):.3f}  max {max(values):.3f}"


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    rounds = int(args[0]) if args else 7
    issues = int(args[1]) if len(args) > 1 else 50
    tag = secrets.token_hex(4)
    dbname, template = f"kg_bench_{tag}", f"kg_bench_ro_{tag}"
    state_db = f"kg_bench_state_{tag}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
        conn.execute(f'CREATE ROLE "{template}" NOLOGIN')
        if "--pg" in sys.argv:
            conn.execute(f'CREATE DATABASE "{state_db}"')
    home = Path(tempfile.mkdtemp(prefix="kg-lease-bench-"))
    url = (f"postgresql+psycopg://postgres@127.0.0.1:5432/{state_db}" if "--pg" in sys.argv
           else f"sqlite:///{home / 'keyguard.db'}")
    engine = create_db_engine(url)
    migrate(engine)
    vault = Vault.initialize(engine, KeyFileRoot.create(home / "root.key"))
    connector = parse_connector("pg", {"type": "postgresql",
                                       "dsn": f"host=127.0.0.1 port=5432 dbname={dbname} user=postgres",
                                       "roles": {"readonly": {"template": template, "max_ttl": "1h"}}})
    issuer = LeaseManager(engine, vault.audit, {"pg": connector}, clock=vault.clock)
    scheduler = Scheduler(vault, LeaseManager(engine, vault.audit, {"pg": connector}, clock=vault.clock))
    scheduler.start()
    probe = psycopg.connect(ADMIN, autocommit=True)
    try:
        gone: list[float] = []
        for _ in range(rounds):
            issued = issuer.issue("pg/role/readonly", timedelta(seconds=2), "bench")
            deadline = issued.expires_at.timestamp() + 30
            while _exists(probe, issued.username) and time.time() < deadline:
                time.sleep(0.01)
            gone.append(time.time() - issued.expires_at.timestamp())
        scheduler.stop()
        times: list[float] = []
        for _ in range(issues):
            start = time.perf_counter()
            issuer.issue("pg/role/readonly", timedelta(minutes=10), "bench")
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        revoked = issuer.revoke_prefix("pg/role/readonly", "bench")
        revoke_all = time.perf_counter() - start
    finally:
        scheduler.stop()
        issuer.close()
        probe.close()
        vault.close()
        engine.dispose()
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            conn.execute(f'DROP DATABASE IF EXISTS "{state_db}" WITH (FORCE)')
            for (member,) in conn.execute(
                    "SELECT m.rolname FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member "
                    "JOIN pg_roles t ON t.oid = a.roleid WHERE t.rolname = %s", (template,)).fetchall():
                conn.execute(f'DROP ROLE IF EXISTS "{member}"')
            conn.execute(f'DROP ROLE IF EXISTS "{template}"')
    backend = "postgresql" if "--pg" in sys.argv else "sqlite"
    print(f"lease expiry → PostgreSQL user gone, {rounds} rounds (keyguard state on {backend}), seconds:")
    print(f"  {_stats(gone)}   (goal ≤ {GOAL:.0f} s)")
    print(f"dynamic credential issue, {issues} sequential, seconds each:")
    print(f"  {_stats(times)}   → {issues / sum(times):.1f} credentials/s")
    print(f"revoke --prefix of {len(revoked)} leases (user dropped + sessions ended each): {revoke_all:.3f} s")


if __name__ == "__main__":
    main()
