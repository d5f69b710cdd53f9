"""Bench: import + detection throughput on a 1,000,000-event CloudTrail file.

    .venv/bin/python bench/monitor_import.py [--events 1000000] [--rounds 3] [--backends sqlite,postgresql]

Generates a CloudTrail file (``lines``: one record per line; ``records``: one
``{"Records": [...]}`` document), times DuckDB's ``read_json`` over it as the
parsing anchor, then ``keyguard audit import --format cloudtrail`` in-process
(parse, de-duplicate, bulk insert, detection) into a fresh database of each backend,
for each round; prints min / median / max and peak memory.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
KMS_OPS = ["Decrypt"] * 6 + ["Encrypt"] * 2 + ["GenerateDataKey", "Sign"]
IAM_OPS = ["GetObject", "PutObject", "ListBuckets", "DescribeInstances"]


def population() -> tuple[list[str], list[str], list[tuple[str, str, str]], list[str]]:
    """100 KMS keys, 50 access keys, three home addresses per key, four user agents."""
    keys = [f"arn:aws:kms:eu-west-1:123456789012:key/{i:08x}-0000-4000-8000-000000000000" for i in range(100)]
    access = [f"AKIA{i:016d}" for i in range(50)]
    home = [(f"10.1.{k}.10", f"10.1.{k}.11", f"203.0.113.{k}") for k in range(100)]
    agents = ["aws-sdk-go/1.44.0", "aws-cli/2.15.0", "Boto3/1.34.0", "aws-sdk-java/2.20"]
    return keys, access, home, agents


def generate(path: Path, n: int, form: str, seed: int = 7) -> None:
    """Write ``n`` CloudTrail records (100 KMS keys, 50 access keys, a few errors)."""
    rng = random.Random(seed)
    # each key is used from three home addresses; one call in 10,000 comes from elsewhere
    keys, access, home, agents = population()
    start = 1_767_225_600  # 2026-01-01T00:00:00Z
    span = 30 * 86400
    step = span / n
    with path.open("wb") as out:
        if form == "records":
            out.write(b'{"Records":[')
        for i in range(n):
            t = start + int(i * step)
            kms = rng.random() < 0.7
            name = rng.choice(KMS_OPS if kms else IAM_OPS)
            record = {
                "eventVersion": "1.08",
                "userIdentity": {
                    "type": "IAMUser",
                    "principalId": "AIDAEXAMPLE",
                    "arn": f"arn:aws:iam::123456789012:user/svc-{i % 40}",
                    "accountId": "123456789012",
                    "accessKeyId": access[i % 50],
                },
                "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)),
                "eventSource": "kms.amazonaws.com" if kms else "s3.amazonaws.com",
                "eventName": name,
                "awsRegion": "eu-west-1",
                "sourceIPAddress": home[i % 100][i % 3] if rng.random() < 0.9999 else "198.51.100.66",
                "userAgent": agents[i % 100 % 4],
                "requestParameters": {
                    "keyId": keys[i % 100],
                    "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                }
                if kms
                else {"bucketName": "data"},
                "responseElements": None,
                "requestID": f"{i:08x}-req",
                "eventID": f"{i:08x}-0000-4000-8000-{seed:012d}",
                "readOnly": True,
                "eventType": "AwsApiCall",
                "recipientAccountId": "123456789012",
            }
            if rng.random() < 0.002:
                record["errorCode"] = "AccessDenied"
                record["errorMessage"] = "not authorized"
            data = orjson.dumps(record)
            if form == "records":
                out.write((b"," if i else b"") + data)
            else:
                out.write(data + b"\n")
        if form == "records":
            out.write(b"]}\n")


def duckdb_anchor(path: Path, form: str) -> tuple[float, int]:
    """Seconds for DuckDB to read the file and count events, and the count."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    started = time.perf_counter()
    if form == "lines":
        sql = (
            "SELECT count(*), count(DISTINCT sourceIPAddress) FROM read_json(?, "
            "format='newline_delimited', maximum_object_size=1048576)"
        )
    else:
        sql = "SELECT count(*), 0 FROM (SELECT unnest(Records) FROM read_json(?, maximum_object_size=2147483647))"
    count, _ = con.execute(sql, [str(path)]).fetchone()  # type: ignore[misc]
    return time.perf_counter() - started, int(count)


def import_once(url: str, path: Path, detect: bool) -> tuple[float, Any]:
    """Seconds and stats of one import (+ detection) into a fresh, migrated database at ``url``."""
    from keyguard.monitor.ingest import import_target
    from keyguard.store.db import create_db_engine, migrate

    engine = create_db_engine(url)
    migrate(engine)
    try:
        started = time.perf_counter()
        stats = import_target(engine, str(path), "cloudtrail", detect=detect)
        return time.perf_counter() - started, stats
    finally:
        engine.dispose()


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A fresh PostgreSQL database URL (dropped after), or None when the server is unreachable."""
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except Exception:  # noqa: BLE001 - no server: the PostgreSQL figure is skipped
        yield None
        return
    name = f"kg_bench_import_{os.getpid()}_{time.monotonic_ns()}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def spread(values: list[float]) -> str:
    return f"{min(values):,.0f} / {statistics.median(values):,.0f} / {max(values):,.0f}"


def main() -> None:
    """Run the bench and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--form", choices=["lines", "records"], default="lines")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--no-detect", action="store_true")
    args = parser.parse_args()
    detect = not args.no_detect
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"cloudtrail.{'jsonl' if args.form == 'lines' else 'json'}"
        started = time.perf_counter()
        generate(path, args.events, args.form)
        size = path.stat().st_size
        print(
            f"generated {args.events:,} CloudTrail records ({args.form}), {size / 1e6:.0f} MB "
            f"in {time.perf_counter() - started:.1f} s"
        )
        rates: dict[str, list[float]] = {"duckdb read_json (anchor)": []}
        for n in range(1, args.rounds + 1):
            seconds, count = duckdb_anchor(path, args.form)
            rates["duckdb read_json (anchor)"].append(count / seconds)
            for backend in backends:
                if backend == "sqlite":
                    seconds, stats = import_once(f"sqlite:///{tmp}/bench-{n}.db", path, detect)
                    Path(f"{tmp}/bench-{n}.db").unlink()
                else:
                    with postgres_database() as url:
                        if url is None:
                            print("PostgreSQL unreachable at 127.0.0.1:5432: skipped")
                            continue
                        seconds, stats = import_once(url, path, detect)
                rates.setdefault(backend, []).append(stats.read / seconds)
                print(
                    f"round {n} {backend}: {stats.imported:,} imported, {stats.rejected} rejected, "
                    f"{stats.alerts} alerts in {seconds:.2f} s = {stats.read / seconds:,.0f} events/s"
                )
        what = "import + detection" if detect else "import"
        print(f"{what} of {args.events:,} CloudTrail events, events/s min / median / max:")
        anchor = min(rates["duckdb read_json (anchor)"])
        for name, values in rates.items():
            ratio = "" if name.startswith("duckdb") else f"  (min / DuckDB's min: {min(values) / anchor:.2f})"
            print(f"  {name:<28}{spread(values)}{ratio}")
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"peak RSS: this process {own:,.0f} MB, largest child (detection) {children:,.0f} MB")
        if os.environ.get("KEEP"):
            print(path)


if __name__ == "__main__":
    main()
