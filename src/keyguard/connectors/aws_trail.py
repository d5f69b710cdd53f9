"""CloudTrail records of one resource: ``LookupEvents`` plus the trail's S3 objects.

Records are returned raw (CloudTrail's own JSON), for the CloudTrail importer of the
monitor to read; this module only selects them.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from keyguard.connectors.aws_session import UNIMPLEMENTED, AwsSession, error_code

Record = dict[str, Any]


def _event_time(record: Record) -> datetime | None:
    try:
        return datetime.fromisoformat(str(record.get("eventTime", "")).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def lookup_events(session: AwsSession, attribute: str, value: str, since: datetime) -> Iterator[Record]:
    """``LookupEvents`` by one attribute (``AccessKeyId``, ``ResourceName``); nothing when unimplemented."""
    client = session.client("cloudtrail")
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {
            "LookupAttributes": [{"AttributeKey": attribute, "AttributeValue": value}],
            "StartTime": since,
        }
        if token:
            kwargs["NextToken"] = token
        try:
            page = client.lookup_events(**kwargs)
        except Exception as exc:  # noqa: BLE001 - an endpoint without LookupEvents has the S3 trail only
            if error_code(exc) in UNIMPLEMENTED | {"500", "InternalFailure"} or not error_code(exc):
                return
            raise session.translate(exc, "cloudtrail:LookupEvents", None) from None
        for event in page.get("Events", []):
            try:
                yield dict(json.loads(event["CloudTrailEvent"]))
            except (KeyError, ValueError, TypeError):
                continue
        token = page.get("NextToken")
        if not token:
            return


def _bucket(session: AwsSession) -> tuple[str, str] | None:
    if session.trail_bucket:
        return session.trail_bucket, session.trail_prefix
    trails = session.call("cloudtrail:DescribeTrails", lambda: session.client("cloudtrail").describe_trails())
    for trail in trails.get("trailList", []):
        if trail.get("S3BucketName"):
            return str(trail["S3BucketName"]), str(trail.get("S3KeyPrefix") or "")
    return None


def s3_records(session: AwsSession, since: datetime) -> Iterator[Record]:
    """Every record of the trail's S3 objects whose day is on or after ``since``."""
    where = _bucket(session)
    if where is None:
        return
    bucket, prefix = where
    s3 = session.client("s3")
    day = since.astimezone(UTC).strftime("%Y/%m/%d")
    paginator = s3.get_paginator("list_objects_v2")
    pages = session.call("s3:ListBucket", lambda: list(paginator.paginate(Bucket=bucket, Prefix=prefix)))
    for page in pages:
        for obj in page.get("Contents", []):
            key = str(obj["Key"])
            parts = key.split("/CloudTrail/", 1)
            if len(parts) == 2:
                stamp = "/".join(parts[1].split("/")[1:4])  # region/YYYY/MM/DD/…
                if len(stamp) == 10 and stamp < day:
                    continue
            body = session.call("s3:GetObject", s3.get_object, Bucket=bucket, Key=key)["Body"].read()
            try:
                document = json.loads(gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body)
            except (ValueError, OSError):
                continue
            for record in document.get("Records", []) if isinstance(document, dict) else []:
                if isinstance(record, dict):
                    yield record


def records(session: AwsSession, since: datetime, match: Callable[[Record], bool],
            lookup: tuple[str, str] | None = None) -> list[tuple[datetime | None, Record]]:
    """Matching records since ``since`` from both sources, deduplicated by ``eventID``, oldest first."""
    seen: set[str] = set()
    out: list[tuple[datetime | None, Record]] = []
    sources: list[Iterator[Record]] = [s3_records(session, since)]
    if lookup is not None:
        sources.insert(0, lookup_events(session, lookup[0], lookup[1], since))
    for source in sources:
        for record in source:
            at = _event_time(record)
            if at is not None and at < since:
                continue
            ident = str(record.get("eventID") or json.dumps(record, sort_keys=True))
            if ident in seen or not match(record):
                continue
            seen.add(ident)
            out.append((at, record))
    out.sort(key=lambda pair: pair[0] or datetime.min.replace(tzinfo=UTC))
    return out
