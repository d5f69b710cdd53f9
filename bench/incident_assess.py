"""Figure: assessment of 1,000,000 events (target < 5 s), SQLite and PostgreSQL when reachable."""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import fresh_sqlite, now, synthetic_history, synthetic_own_history  # noqa: E402

from keyguard.assess.engine import assess  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000


def run(engine, label: str) -> None:  # type: ignore[no-untyped-def]
    exposed = now() - timedelta(days=1)
    t0 = time.perf_counter()
    synthetic_history(engine, "payments-db", N, exposed)
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = assess(engine, "payments-db", exposed, now=now(), tier="high")
    took = time.perf_counter() - t0
    own = fresh_sqlite("kg-bench-assess-own-")[0] if engine.dialect.name == "sqlite" else None
    if own is not None:
        synthetic_own_history(own, "payments-db", N, exposed)
        t1 = time.perf_counter()
        own_result = assess(own, "payments-db", exposed, now=now(), tier="high")
        print(
            f"{'sqlite':10s} keyguard's own audit log: events={own_result.events_total:>9,}  "
            f"assess {time.perf_counter() - t1:5.2f} s  (target < 5 s)"
        )
    print(
        f"{label:10s} events={result.events_total:>9,}  load {load:6.1f} s  assess {took:5.2f} s  "
        f"(target < 5 s)  grade={result.grade} new_ips={len(result.new_source_ips)} bursts={len(result.bursts)}"
    )


if __name__ == "__main__":
    engine, _ = fresh_sqlite("kg-bench-assess-")
    run(engine, "sqlite")
    try:
        import psycopg

        name = f"kg_bench_{int(time.time())}"
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        from keyguard.store.db import create_db_engine, migrate

        pg = create_db_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
        migrate(pg)
        try:
            run(pg, "postgresql")
        finally:
            pg.dispose()
            with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
                c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    except Exception as exc:  # noqa: BLE001
        print(f"postgresql skipped: {type(exc).__name__}: {exc}")
