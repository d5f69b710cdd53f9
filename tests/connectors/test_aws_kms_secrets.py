"""KMS keys and Secrets Manager secrets on moto, and kill -9 in the middle of KMS and IAM rotations."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from keyguard.connectors.config import ConnectorConfig
from keyguard.connectors.registry import open_connector
from keyguard.connectors.secret import Secret

from .aws_helpers import admin, leaked_user
from .conftest import unique
from .servers import Moto

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _kms_key(moto: Moto, n: int) -> tuple[str, str, list[str], list[bytes]]:
    kms = admin(moto, "kms")
    key_id = kms.create_key(Description="payments")["KeyMetadata"]["KeyId"]
    alias = "alias/" + unique("payments")
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    plain = [f"card-{i}".encode() for i in range(n)]
    blobs = [base64.b64encode(kms.encrypt(KeyId=alias, Plaintext=p)["CiphertextBlob"]).decode() for p in plain]
    return key_id, alias, blobs, plain


def test_kms_contain_prove_rotate_retire(moto: Moto, aws_config: tuple[ConnectorConfig, dict[str, str]],
                                         tmp_path: Path) -> None:
    config, env = aws_config
    key_id, alias, blobs, plain = _kms_key(moto, 5)
    adapter = open_connector(config, environ=env).adapter("kms-key")
    ref = adapter.ref(alias)
    assert not adapter.prove_dead(ref, samples=blobs[:1]).is_dead
    adapter.contain(ref)
    proof = adapter.prove_dead(ref, samples=blobs[:2])
    assert proof.evidence[0].endswith("is Disabled")
    # moto 5.2.5 decrypts under a disabled key (AWS answers DisabledException): the proof reports what the
    # endpoint did and claims death only when every Decrypt was refused.
    assert proof.is_dead == all("refused" in e for e in proof.evidence[1:]), proof.evidence

    rotation = adapter.rotate(ref, ciphertexts=blobs, checkpoint=tmp_path / "kms.json")
    kms = admin(moto, "kms")
    new_id = rotation.detail["new_id"]
    assert new_id != key_id and kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == new_id
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"  # disabled again
    for (old, new), want in zip(rotation.rewrapped, plain, strict=True):
        assert old in blobs
        reply = kms.decrypt(CiphertextBlob=base64.b64decode(new))
        assert reply["Plaintext"] == want and reply["KeyId"].endswith(new_id)
    after = adapter.prove_dead(adapter.ref(key_id), samples=blobs)
    assert after.is_dead == all("refused" in e for e in after.evidence[1:])
    adapter.retire(rotation)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"


def _crash(moto: Moto, env: dict[str, str], ref: str, tmp_path: Path, crash: list[Any],
           ciphertexts: Sequence[str] = ()) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({
        "name": "aws-test", "env": env, "ref": ref, "checkpoint": str(tmp_path / "cp.json"), "crash": crash,
        "ciphertexts": list(ciphertexts),
        "table": {"type": "aws", "endpoint_url": moto.endpoint, "access_key_id_env": "KG_T_AWS_ID",
                  "secret_access_key_env": "KG_T_AWS_SECRET"},
    }))
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("crash_runner.py")), str(spec)],
                          env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


@pytest.mark.parametrize("crash", [["_kms", "create_key", 1], ["_kms", "re_encrypt", 60]])
def test_kms_rotation_resumes_after_kill_9(moto: Moto, aws_config: tuple[ConnectorConfig, dict[str, str]],
                                           tmp_path: Path, crash: list[Any]) -> None:
    config, env = aws_config
    key_id, alias, blobs, plain = _kms_key(moto, 70)
    adapter = open_connector(config, environ=env).adapter("kms-key")
    ref = adapter.ref(alias)
    adapter.contain(ref)
    _crash(moto, env, str(ref), tmp_path, crash, blobs)
    checkpoint = tmp_path / "cp.json"
    assert checkpoint.stat().st_mode & 0o777 == 0o600
    rotation = adapter.rotate(ref, ciphertexts=blobs, checkpoint=checkpoint)

    kms = admin(moto, "kms")
    created = [k["KeyId"] for k in kms.list_keys()["Keys"]
               if {"TagKey": "keyguard-rotated-from", "TagValue": key_id}
               in kms.list_resource_tags(KeyId=k["KeyId"])["Tags"]]
    assert created == [rotation.detail["new_id"]]  # the resumed run reused the key the killed one made
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    assert len(rotation.rewrapped) == 70
    for (_, new), want in zip(rotation.rewrapped, plain, strict=True):
        assert kms.decrypt(CiphertextBlob=base64.b64decode(new))["Plaintext"] == want


def test_iam_rotation_resumes_after_kill_9(moto: Moto, aws_config: tuple[ConnectorConfig, dict[str, str]],
                                           tmp_path: Path) -> None:
    config, env = aws_config
    user, key_id, _ = leaked_user(moto)
    adapter = open_connector(config, environ=env).adapter("access-key")
    ref = adapter.ref(key_id)
    _crash(moto, env, str(ref), tmp_path, ["_iam", "create_access_key", 1])
    iam = admin(moto, "iam")
    orphan = {k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]} - {key_id}
    assert len(orphan) == 1  # the killed run created a key and never handed its secret over
    rotation = adapter.rotate(ref, checkpoint=tmp_path / "cp.json")
    keys = {k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}
    assert keys == {key_id, rotation.new_ref.id} and rotation.new_ref.id not in orphan
    with pytest.raises(Exception, match="already done"):
        adapter.rotate(ref, checkpoint=tmp_path / "cp.json")  # a finished rotation is never silently redone


def test_secrets_manager_identify_rotate_retire(moto: Moto, aws_config: tuple[ConnectorConfig, dict[str, str]],
                                                tmp_path: Path) -> None:
    config, env = aws_config
    sm = admin(moto, "secretsmanager")
    name = "prod/" + unique("db")
    leaked = "leaked-" + unique("pw")
    sm.create_secret(Name=name, SecretString=json.dumps({"username": "app", "password": leaked}))
    adapter = open_connector(config, environ=env).adapter("secret")
    found = adapter.identify(Secret(leaked))
    assert found is not None and str(found.ref) == f"aws-test/secret/{name}"
    ref = found.ref
    old_version = found.detail["version"]
    rotation = adapter.rotate(ref, checkpoint=tmp_path / "sm.json")
    assert rotation.new_secret is not None
    current = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    assert current["username"] == "app" and current["password"] != leaked
    stages = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    assert stages[old_version] == ["AWSPREVIOUS"] and stages[rotation.detail["new_version"]] == ["AWSCURRENT"]
    assert not adapter.prove_dead(ref, Secret(leaked)).is_dead  # AWSPREVIOUS still holds it
    adapter.retire(rotation)
    stages = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    assert not stages.get(old_version)
    assert adapter.prove_dead(ref, Secret(leaked)).is_dead
