"""IAM access keys on moto: identify, contain, prove dead, usage, rotate, deliver, switch, retire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keyguard.connectors.aws_iam import DENY_POLICY
from keyguard.connectors.base import Step
from keyguard.connectors.config import ConnectorConfig, parse_connector
from keyguard.connectors.registry import open_connector, resolve
from keyguard.connectors.secret import Secret

from .aws_helpers import admin, as_key, cloudtrail_record, leaked_user, trail_with
from .servers import Moto

pytestmark = pytest.mark.slow


def test_identify_contain_prove_dead(moto: Moto, aws_config: tuple[ConnectorConfig, dict[str, str]]) -> None:
    config, env = aws_config
    user, key_id, secret = leaked_user(moto)
    conn = open_connector(config, environ=env)
    found = conn.identify(Secret(key_id))
    assert [str(f.ref) for f in found] == [f"aws-test/access-key/{key_id}"]
    assert found[0].owner == user and found[0].detail["status"] == "Active"
    assert conn.identify(Secret("AKIA" + "Q" * 16)) == []  # no such key in this account

    ref, adapter = resolve(found[0].ref, {"aws-test": conn})
    assert adapter.steps == frozenset(Step)
    radius = adapter.blast_radius(ref)  # type: ignore[attr-defined]
    assert "s3:GetObject" in radius["allows"] and not radius["is_admin"]

    alive = adapter.prove_dead(ref, Secret(secret))
    assert not alive.is_dead and "iam: key status Active" in alive.evidence

    outcome = adapter.contain(ref)
    iam = admin(moto, "iam")
    status = iam.list_access_keys(UserName=user)["AccessKeyMetadata"][0]["Status"]
    assert status == "Inactive"
    assert DENY_POLICY in iam.list_user_policies(UserName=user)["PolicyNames"]
    assert any("Inactive" in a for a in outcome.actions)

    proof = adapter.prove_dead(ref, Secret(secret))
    assert proof.is_dead, proof.evidence
    assert "iam: key status Inactive" in proof.evidence
    assert any("refused" in line for line in proof.evidence)


def test_usage_from_trail_bucket_and_last_used(moto: Moto, aws_config: tuple[ConnectorConfig, dict[str, str]]) -> None:
    _, env = aws_config
    user, key_id, secret = leaked_user(moto)
    now = datetime.now(UTC)
    as_key(moto, "iam", key_id, secret).get_user()  # a real use: GetAccessKeyLastUsed records it
    records = [
        cloudtrail_record(key_id, "GetObject", "s3.amazonaws.com", "203.0.113.9", now - timedelta(minutes=5),
                          bucketName="payroll", key="2026/cards.csv"),
        cloudtrail_record(key_id, "ListBuckets", "s3.amazonaws.com", "203.0.113.9", now - timedelta(minutes=4)),
        cloudtrail_record("AKIAOTHEROTHEROTHER2", "ListBuckets", "s3.amazonaws.com", "10.0.0.1", now),
        cloudtrail_record(key_id, "GetObject", "s3.amazonaws.com", "198.51.100.1", now - timedelta(days=3)),
    ]
    bucket = trail_with(moto, records, now)
    config = parse_connector("aws-test", {
        "type": "aws", "endpoint_url": moto.endpoint, "cloudtrail_bucket": bucket,
        "access_key_id_env": "KG_T_AWS_ID", "secret_access_key_env": "KG_T_AWS_SECRET",
    })
    adapter = open_connector(config, environ=env).adapter("access-key")
    usage = adapter.usage_since(adapter.ref(key_id), now - timedelta(hours=1))
    trail = [u for u in usage if u.format == "cloudtrail"]
    assert [u.record["eventName"] for u in trail] == ["GetObject", "ListBuckets"]
    assert all(u.record["userIdentity"]["accessKeyId"] == key_id for u in trail)
    last = [u for u in usage if u.format == "event"]
    assert len(last) == 1 and last[0].record["op"] == "aws:iam"


def test_rotate_deliver_switch_retire(moto: Moto, aws_config: tuple[ConnectorConfig, dict[str, str]],
                                      tmp_path: Path) -> None:
    config, env = aws_config
    user, key_id, secret = leaked_user(moto)
    adapter = open_connector(config, environ=env).adapter("access-key")
    ref = adapter.ref(key_id)
    env_file = tmp_path / "app.env"
    env_file.write_text(f"AWS_ACCESS_KEY_ID={key_id}\nAWS_SECRET_ACCESS_KEY={secret}\n")
    env_file.chmod(0o640)
    adapter.contain(ref)
    rotation = adapter.rotate(ref, checkpoint=tmp_path / "rotate.json")
    assert rotation.new_secret is not None and rotation.new_ref.id != key_id
    assert "Secret(" in repr(rotation.new_secret) and rotation.new_secret.reveal() not in repr(rotation)
    keys = admin(moto, "iam").list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert {k["AccessKeyId"] for k in keys} == {key_id, rotation.new_ref.id}

    delivered = adapter.deliver(rotation, [env_file], Secret(secret))
    text = env_file.read_text()
    assert rotation.new_ref.id in text and rotation.new_secret.reveal() in text and secret not in text
    assert env_file.stat().st_mode & 0o777 == 0o640 and delivered.detail["files"] == [str(env_file)]

    as_key(moto, "sts", rotation.new_ref.id, rotation.new_secret.reveal()).get_caller_identity()
    switched = adapter.consumers_switched(rotation)
    assert switched.is_switched, switched.evidence

    adapter.retire(rotation)
    keys = admin(moto, "iam").list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [rotation.new_ref.id]
    proof = adapter.prove_dead(ref, Secret(secret))
    assert proof.is_dead and "iam: key status deleted" in proof.evidence
    assert any("InvalidClientTokenId" in line for line in proof.evidence)
