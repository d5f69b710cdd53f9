"""Vault/OpenBao tokens, KV v2 secrets and transit keys on a real OpenBao dev server with a file audit device."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from keyguard.connectors.base import Step
from keyguard.connectors.config import parse_connector
from keyguard.connectors.registry import Connector, open_connector
from keyguard.connectors.secret import Secret

from .conftest import unique
from .servers import Bao

pytestmark = pytest.mark.slow


@pytest.fixture
def bao_conn(bao: Bao) -> Connector:
    config = parse_connector("bao", {"type": "vault", "url": bao.address, "token_env": "KG_T_BAO",
                                     "audit_log": str(bao.audit_log)})
    return open_connector(config, environ={"KG_T_BAO": bao.token})


def _api(bao: Bao, method: str, path: str, body: Any = None, token: str | None = None) -> dict[str, Any]:
    reply = httpx.request(method, f"{bao.address}/v1/{path}", json=body,
                          headers={"X-Vault-Token": token or bao.token, "X-Forwarded-For": "203.0.113.7"})
    reply.raise_for_status()
    return reply.json() if reply.content else {}


def test_token_identify_contain_prove_dead_usage(bao: Bao, bao_conn: Connector) -> None:
    _api(bao, "PUT", "sys/policies/acl/app", {"policy": 'path "secret/*" { capabilities = ["read", "list"] }\n'
                                                     'path "auth/token/create" { capabilities = ["update"] }'})
    parent = _api(bao, "POST", "auth/token/create", {"policies": ["app"], "display_name": "ci"})["auth"]
    child = _api(bao, "POST", "auth/token/create", {"policies": ["app"]}, token=parent["client_token"])["auth"]
    leaked = parent["client_token"]
    since = datetime.now(UTC) - timedelta(seconds=5)
    _api(bao, "GET", "auth/token/lookup-self", token=leaked)  # the attacker uses it

    found = bao_conn.identify(Secret(leaked))
    assert [str(f.ref) for f in found] == [f"bao/token/{parent['accessor']}"]
    assert "app" in found[0].detail["policies"]
    adapter = bao_conn.adapter("token")
    ref = found[0].ref
    assert not adapter.prove_dead(ref, Secret(leaked)).is_dead

    usage = adapter.usage_since(ref, since)
    assert usage and all(u.format == "vault-audit" for u in usage)
    assert any(u.record["request"]["path"] == "auth/token/lookup-self" for u in usage)
    assert any(u.record["request"].get("remote_address") == "203.0.113.7" for u in usage)

    adapter.contain(ref)
    proof = adapter.prove_dead(ref, Secret(leaked))
    assert proof.is_dead, proof.evidence
    child_lookup = httpx.get(f"{bao.address}/v1/auth/token/lookup-self", headers={"X-Vault-Token":
                                                                                  child["client_token"]})
    assert child_lookup.status_code == 403  # the children went with it
    assert not adapter.supports(Step.ROTATE) and "auth method" in adapter.instructions(Step.ROTATE)


def test_kv_identify_rotate_retire(bao: Bao, bao_conn: Connector, tmp_path: Path) -> None:
    path = unique("app") + "/db"
    leaked = "leaked-" + unique("pw")
    _api(bao, "POST", f"secret/data/{path}", {"data": {"username": "app", "password": leaked}})
    since = datetime.now(UTC) - timedelta(seconds=5)
    _api(bao, "GET", f"secret/data/{path}")
    found = bao_conn.identify(Secret(leaked))
    assert [str(f.ref) for f in found] == [f"bao/kv/{path}"]
    assert found[0].detail == {"versions": [1], "field": "password"}
    adapter = bao_conn.adapter("kv")
    ref = found[0].ref
    assert any(u.record["request"]["path"] == f"secret/data/{path}" for u in adapter.usage_since(ref, since))

    target = tmp_path / "app.env"
    target.write_text(f"DB_PASSWORD={leaked}\n")
    rotation = adapter.rotate(ref, checkpoint=tmp_path / "kv.json")
    assert rotation.detail["new_version"] == 2 and rotation.new_secret is not None
    current = _api(bao, "GET", f"secret/data/{path}")["data"]["data"]
    assert current == {"username": "app", "password": rotation.new_secret.reveal()}
    again = adapter.rotate(ref, checkpoint=tmp_path / "kv.json.2")  # a fresh run makes v3, not a clash
    assert again.detail["new_version"] == 3
    adapter.deliver(again, [target], Secret(leaked))
    assert again.new_secret is not None and again.new_secret.reveal() in target.read_text()
    assert not adapter.prove_dead(ref, Secret(leaked)).is_dead  # v1 still holds it
    adapter.retire(again)
    assert adapter.prove_dead(ref, Secret(leaked)).is_dead
    meta = _api(bao, "GET", f"secret/metadata/{path}")["data"]["versions"]
    assert meta["1"]["destroyed"] and meta["2"]["destroyed"] and not meta["3"]["destroyed"]


def test_transit_contain_rewrap_retire(bao: Bao, bao_conn: Connector, tmp_path: Path) -> None:
    name = unique("payments")
    _api(bao, "POST", f"transit/keys/{name}")
    plain = [base64.b64encode(f"card-{i}".encode()).decode() for i in range(7)]
    olds = [_api(bao, "POST", f"transit/encrypt/{name}", {"plaintext": p})["data"]["ciphertext"] for p in plain]
    adapter = bao_conn.adapter("transit")
    ref = adapter.ref(name)
    assert not adapter.prove_dead(ref, samples=olds[:2]).is_dead
    outcome = adapter.contain(ref)
    assert outcome.detail == {"leaked_version": 1, "latest_version": 2}
    proof = adapter.prove_dead(ref, samples=olds[:2])
    assert proof.is_dead, proof.evidence

    rotation = adapter.rotate(ref, ciphertexts=olds, checkpoint=tmp_path / "transit.json")
    news = [new for _, new in rotation.rewrapped]
    assert all(n.startswith("vault:v2:") for n in news)
    assert adapter.key(name)["min_decryption_version"] == 2  # raised again after the rewrap
    back = [_api(bao, "POST", f"transit/decrypt/{name}", {"ciphertext": n})["data"]["plaintext"] for n in news]
    assert back == plain
    adapter.retire(rotation)
    key = adapter.key(name)
    assert key["min_available_version"] == 2 and list(key["keys"]) == ["2"]
