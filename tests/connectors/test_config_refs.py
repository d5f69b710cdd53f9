"""Connector configuration (SPEC §7), resource references, secrets and checkpoints: no servers needed."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from keyguard.connectors.checkpoint import Checkpoint
from keyguard.connectors.config import load_connectors, parse_connector
from keyguard.connectors.errors import BadReferenceError, ConnectorConfigError, StepStateError, UnknownReferenceError
from keyguard.connectors.refs import Ref, check_kind, parse_ref
from keyguard.connectors.registry import Connector, resolve
from keyguard.connectors.secret import Secret, scrub

TOML = """
[monitor]
sinks = []

[connectors.aws-prod]
type = "aws"
region = "eu-west-1"
endpoint_url = "http://127.0.0.1:4566"
access_key_id_env = "AWS_ID"
secret_access_key_env = "AWS_SECRET"

[connectors.bao]
type = "vault"
url = "http://127.0.0.1:8200"
token_env = "BAO_TOKEN"
transit_mount = "crypto"

[connectors.pg]
type = "postgresql"
dsn = "host=db.internal dbname=app user=keyguard"
password_env = "PG_PASSWORD"

[connectors.redis]
type = "redis"
url = "redis://cache:6379/0"
username = "keyguard"
password_env = "REDIS_PASSWORD"
"""


@pytest.mark.parametrize(("text", "want"), [
    ("aws-prod/access-key/AKIAIOSFODNN7EXAMPLE", Ref("aws-prod", "access-key", "AKIAIOSFODNN7EXAMPLE")),
    ("aws-prod/kms-key/alias/payments", Ref("aws-prod", "kms-key", "alias/payments")),
    ("aws-prod/secret/prod/db", Ref("aws-prod", "secret", "prod/db")),
    ("bao/kv/app/db", Ref("bao", "kv", "app/db")),
    ("pg/role/billing", Ref("pg", "role", "billing")),
    ("external/github-pat/sha256:ab12", Ref("external", "github-pat", "sha256:ab12")),
])
def test_references_parse_and_print_back(text: str, want: Ref) -> None:
    assert parse_ref(text) == want and str(want) == text


@pytest.mark.parametrize("text", ["", "pg/role", "pg//billing", "PG/role/x", "pg/Role/x", "pg/role/a b", "/role/x"])
def test_bad_references_are_one_usage_error(text: str) -> None:
    with pytest.raises(BadReferenceError) as caught:
        parse_ref(text)
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)


def test_kinds_are_checked_per_type() -> None:
    check_kind(Ref("pg", "role", "x"), "postgresql")
    with pytest.raises(BadReferenceError, match="has no kind 'token'"):
        check_kind(Ref("pg", "token", "x"), "postgresql")


def test_unknown_connector_is_not_found() -> None:
    with pytest.raises(UnknownReferenceError) as caught:
        resolve("nope/role/x", {})
    assert caught.value.exit_code == 4 and "unknown connector 'nope'" in str(caught.value)


def test_keyguard_toml_connectors(tmp_path: Path) -> None:
    path = tmp_path / "keyguard.toml"
    path.write_text(TOML)
    configs = load_connectors(path)
    assert sorted(configs) == ["aws-prod", "bao", "pg", "redis"]
    assert configs["aws-prod"].get("region") == "eu-west-1"
    assert configs["bao"].get("kv_mount") == "secret" and configs["bao"].get("transit_mount") == "crypto"
    assert configs["pg"].secret_env == {"password": "PG_PASSWORD"}
    secret = configs["redis"].credential("password", environ={"REDIS_PASSWORD": "s3cr3t-value"})
    assert secret is not None and secret.reveal() == "s3cr3t-value"
    assert load_connectors(tmp_path / "absent.toml") == {}


class _Sealed:
    def lookup(self, connector: str, field: str) -> Secret | None:
        return Secret("from-the-sealed-store") if (connector, field) == ("bao", "token") else None


def test_credentials_from_a_sealed_store() -> None:
    config = parse_connector("bao", {"type": "vault", "url": "http://x"})
    token = config.credential("token", source=_Sealed())
    assert token is not None and token.reveal() == "from-the-sealed-store"


@pytest.mark.parametrize(("table", "message"), [
    ({"type": "vault", "url": "http://x", "token": "hvs.plaintext"}, "must not be written in keyguard.toml"),
    ({"type": "postgresql", "dsn": "postgresql://u:hunter2@db/app"}, "dsn holds a password"),
    ({"type": "postgresql", "dsn": "host=db password=hunter2"}, "dsn holds a password"),
    ({"type": "redis", "url": "redis://:hunter2@cache:6379"}, "url holds a password"),
    ({"type": "aws", "secret_access_key": "x" * 40}, "must not be written"),
    ({"type": "vault"}, "missing url"),
    ({"type": "gcp"}, "type must be one of"),
    ({"type": "redis", "url": "redis://c", "colour": "blue"}, "unknown setting 'colour'"),
])
def test_bad_tables_are_refused_without_echoing_values(table: dict[str, str], message: str) -> None:
    with pytest.raises(ConnectorConfigError) as caught:
        parse_connector("c", table)
    text = f"{caught.value} {caught.value.hint}"
    assert message in text and "hunter2" not in text and "hvs.plaintext" not in text and "x" * 40 not in text


def test_missing_environment_variable_names_it() -> None:
    config = parse_connector("pg", {"type": "postgresql", "dsn": "host=db", "password_env": "KG_NOPE"})
    with pytest.raises(ConnectorConfigError, match="KG_NOPE"):
        config.credential("password", environ={})
    with pytest.raises(ConnectorConfigError, match="invalid connector name"):
        parse_connector("external", {"type": "redis", "url": "redis://c"})


def test_secret_never_shows_itself() -> None:
    secret = Secret("hunter2-hunter2")
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret) and "hunter2" not in f"{secret}"
    assert secret.matches("hunter2-hunter2") and not secret.matches("hunter3-hunter2")
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    assert scrub("token hunter2-hunter2 refused", [secret]) == "token *** refused"


def test_checkpoint_is_private_atomic_and_survives_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    cp = Checkpoint(path, ref="aws/kms-key/k", step="rotate")
    assert cp.is_new
    cp.save(new_id="k2")
    cp.record([("0", "ct0"), ("1", "ct1")])
    with open(cp.log_path, "a") as handle:
        handle.write('{"k": "2", "v": "c')  # the writer died mid-line
    again = Checkpoint(path, ref="aws/kms-key/k", step="rotate")
    assert again.state == {"new_id": "k2"} and again.done == {"0": "ct0", "1": "ct1"}
    assert os.stat(path).st_mode & 0o777 == 0o600 and os.stat(cp.log_path).st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(StepStateError, match="belongs to rotate of aws/kms-key/k"):
        Checkpoint(path, ref="aws/kms-key/other", step="rotate")
    again.clear()
    assert not path.exists() and not cp.log_path.exists()


def test_connector_lists_kinds_on_a_wrong_kind() -> None:
    conn = Connector("pg", "postgresql", {}, lambda: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(BadReferenceError, match="has no kind 'user'") as caught:
        conn.adapter("user")
    assert caught.value.hint == "kinds: role"
