"""Versioned secrets: audited reads per second, and the start-up cost of ``keyguard run``.

1. ``SecretStore.get`` in process, one thread: every read checks the grant, opens the
   sealed value and appends its hash-chained audit event durably before it returns;
   beside it, the audited ``Vault.encrypt`` of 32 bytes (the anchor: the same audit path).
2. Wall time of ``keyguard run --secret V=NAME -- python -c pass`` beside plain
   ``python -c pass`` and ``keyguard secret list`` (the CLI's own start-up).

Each figure is min / median / max over ``--rounds`` rounds (default 3).

    .venv/bin/python bench/secrets_run.py [--rounds 3] [--reads 300] [--db URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from keyguard.store.db import create_db_engine, migrate
from keyguard.vault.principal import Principal
from keyguard.vault.roots import KeyFileRoot
from keyguard.vault.secrets import SecretStore
from keyguard.vault.service import Vault


def _triple(values: list[float]) -> str:
    return f"min {min(values):9.1f}  median {statistics.median(values):9.1f}  max {max(values):9.1f}"


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in a temp dir)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="kg-bench-secrets-"))
    url = args.db or f"sqlite:///{home / 'keyguard.db'}"
    engine = create_db_engine(url)
    migrate(engine)
    vault = Vault.initialize(engine, KeyFileRoot.create(home / "root.key"))
    admin = Principal(name="bench-admin", role="admin")
    store = SecretStore(vault)
    store.put(admin, "bench-db", os.urandom(24).hex().encode())
    vault.create_key(admin, "bench", "encrypt")
    svc = Principal(
        name="bench-svc",
        role="service",
        grants=(("secret:bench-db", "read"), ("bench", "encrypt")),
        source_ip="127.0.0.1",
    )
    gets: list[float] = []
    anchor: list[float] = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        for _ in range(args.reads):
            store.get(svc, "bench-db")
        gets.append(args.reads / (time.perf_counter() - started))
        started = time.perf_counter()
        for _ in range(args.reads):
            vault.encrypt(svc, "bench", b"x" * 32)
        anchor.append(args.reads / (time.perf_counter() - started))
    vault.close()
    engine.dispose()
    print(f"backend: {engine.dialect.name}; {args.reads} operations per round, {args.rounds} rounds")
    print(f"secret get (audited)      ops/s  {_triple(gets)}")
    print(f"anchor: encrypt (audited) ops/s  {_triple(anchor)}")

    env = {**os.environ, "KEYGUARD_HOME": str(home), "KEYGUARD_DATABASE_URL": url}
    env["KEYGUARD_KEYFILE"] = str(home / "root.key")
    env.pop("KEYGUARD_TOKEN", None)
    kg = [sys.executable, "-m", "keyguard"]
    plain = [_wall([sys.executable, "-c", "pass"], env) for _ in range(args.rounds)]
    listing = [_wall([*kg, "secret", "list"], env) for _ in range(args.rounds)]
    started_cmd = [*kg, "run", "--secret", "V=bench-db", "--", sys.executable, "-c", "pass"]
    run = [_wall(started_cmd, env) for _ in range(args.rounds)]
    print(f"python -c pass            ms     {_triple(plain)}")
    print(f"keyguard secret list      ms     {_triple(listing)}")
    print(f"keyguard run … -- python  ms     {_triple(run)}")


if __name__ == "__main__":
    main()
