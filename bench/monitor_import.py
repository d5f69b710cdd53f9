"""Bench: import + detection throughput on a 1,000,000-event CloudTrail file.

    .venv/bin/python bench/monitor_import.py [--events 1000000] [--db URL] [--form lines|records]

Generates a CloudTrail file (``lines``: one record per line; ``records``: one
``{"Records": [...]}`` document), times DuckDB's ``read_json`` over it as the
parsing anchor, then ``keyguard audit import --format cloudtrail`` in-process
(parse, de-duplicate, bulk insert, detection) into a fresh database.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import orjson

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


def main() -> None:
    """Run the bench and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--form", choices=["lines", "records"], default="lines")
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in a temp dir)")
    parser.add_argument("--no-detect", action="store_true")
    args = parser.parse_args()

    from keyguard.monitor.ingest import import_target
    from keyguard.store.db import create_db_engine, migrate

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"cloudtrail.{'jsonl' if args.form == 'lines' else 'json'}"
        started = time.perf_counter()
        generate(path, args.events, args.form)
        size = path.stat().st_size
        print(
            f"generated {args.events:,} CloudTrail records ({args.form}), {size / 1e6:.0f} MB "
            f"in {time.perf_counter() - started:.1f} s"
        )

        seconds, count = duckdb_anchor(path, args.form)
        print(f"duckdb read_json (anchor): {count:,} events in {seconds:.2f} s = {count / seconds:,.0f} events/s")

        url = args.db or f"sqlite:///{tmp}/bench.db"
        engine = create_db_engine(url)
        migrate(engine)
        started = time.perf_counter()
        stats = import_target(engine, str(path), "cloudtrail", detect=not args.no_detect)
        seconds = time.perf_counter() - started
        print(
            f"keyguard import{'' if args.no_detect else ' + detect'} ({engine.dialect.name}): "
            f"{stats.imported:,} imported, {stats.rejected} rejected, {stats.alerts} alerts "
            f"in {seconds:.2f} s = {stats.read / seconds:,.0f} events/s"
        )
        started = time.perf_counter()
        again = import_target(engine, str(path), "cloudtrail", detect=not args.no_detect)
        seconds = time.perf_counter() - started
        print(f"re-import: {again.imported} imported, {again.duplicates:,} duplicates in {seconds:.2f} s")
        engine.dispose()
        if os.environ.get("KEEP"):
            print(path)


if __name__ == "__main__":
    main()
