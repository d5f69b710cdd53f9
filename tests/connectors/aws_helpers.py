"""Helpers of the AWS connector tests: admin clients on moto and CloudTrail files in the trail bucket."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3

from .conftest import unique
from .servers import Moto


def admin(moto: Moto, service: str) -> Any:
    """A client with the admin identity (moto checks signatures)."""
    return boto3.client(service, endpoint_url=moto.endpoint, region_name="us-east-1",
                        aws_access_key_id=moto.key_id, aws_secret_access_key=moto.secret)


def as_key(moto: Moto, service: str, key_id: str, secret: str) -> Any:
    """A client signed with another pair."""
    return boto3.client(service, endpoint_url=moto.endpoint, region_name="us-east-1",
                        aws_access_key_id=key_id, aws_secret_access_key=secret)


def leaked_user(moto: Moto, policy: dict[str, Any] | None = None) -> tuple[str, str, str]:
    """A new IAM user with an inline policy and one access key: (user, key id, secret)."""
    iam = admin(moto, "iam")
    user = unique("app")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="app", PolicyDocument=json.dumps(policy or {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "iam:GetUser"], "Resource": "*"}],
    }))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return user, key["AccessKeyId"], key["SecretAccessKey"]


def cloudtrail_record(key_id: str, name: str, source: str, ip: str, at: datetime, **params: Any) -> dict[str, Any]:
    """One CloudTrail record in AWS's own shape."""
    return {
        "eventVersion": "1.08", "eventTime": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": source, "eventName": name, "awsRegion": "us-east-1", "sourceIPAddress": ip,
        "userAgent": "aws-cli/2.15.0", "eventID": str(uuid.uuid4()), "eventType": "AwsApiCall",
        "requestParameters": params or None, "responseElements": None,
        "userIdentity": {"type": "IAMUser", "accessKeyId": key_id, "accountId": "123456789012"},
    }


def trail_with(moto: Moto, records: list[dict[str, Any]], at: datetime) -> str:
    """A trail whose bucket holds one gzipped log file with ``records``; returns the bucket."""
    bucket = unique("trail")
    admin(moto, "s3").create_bucket(Bucket=bucket)
    admin(moto, "cloudtrail").create_trail(Name=bucket, S3BucketName=bucket)
    key = f"AWSLogs/123456789012/CloudTrail/us-east-1/{at:%Y/%m/%d}/123456789012_CloudTrail_{uuid.uuid4().hex}.json.gz"
    admin(moto, "s3").put_object(Bucket=bucket, Key=key, Body=gzip.compress(json.dumps({"Records": records}).encode()))
    return bucket
