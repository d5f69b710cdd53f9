"""A transit key's registered ciphertexts re-encrypted by ``respond --resource``, also across kill -9.

Ciphertexts made under an OpenBao transit key are registered in keyguard's data inventory
(``connector register``); the response contains the key (old versions refused), rewraps
every registered ciphertext and stores the new ones. Killed at a spread of database commits
and rerun, it ends with every item readable under the new version and no item lost.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import killpoint

from .conftest import unique
from .servers import Bao

pytestmark = pytest.mark.slow
ITEMS = 4


def _bao(bao: Bao, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{bao.address}/v1/{path}", json=body, headers={"X-Vault-Token": bao.token},
                         timeout=10)


def _setup(tmp_path: Path, bao: Bao, name: str) -> tuple[dict[str, str], dict[str, bytes]]:
    key = unique("pay")
    _bao(bao, "POST", f"transit/keys/{key}").raise_for_status()
    env = dict(os.environ, KEYGUARD_HOME=str(tmp_path / name), KEYGUARD_DATABASE_URL=f"sqlite:///{tmp_path}/{name}.db",
               KG_BAO=bao.token, PYTHONPATH=os.pathsep.join([str(killpoint.SRC), str(killpoint.HARNESS.parents[1])]))
    for var in ("KEYGUARD_TOKEN", "KEYGUARD_OTP", "KEYGUARD_MFA"):
        env.pop(var, None)
    kg(env, "init")
    (tmp_path / name / "keyguard.toml").write_text(
        f'[connectors.bao]\ntype = "vault"\nurl = "{bao.address}"\ntoken_env = "KG_BAO"\n'
        f'audit_log = "{bao.audit_log}"\n')
    plain: dict[str, bytes] = {}
    for i in range(ITEMS):
        data = f"record {i} of {key}".encode()
        ct = _bao(bao, "POST", f"transit/encrypt/{key}", {"plaintext": base64.b64encode(data).decode()})
        kg(env, "connector", "register", f"bao/transit/{key}", f"item-{i}", "--class", "pii", "--records", "10",
           stdin=ct.json()["data"]["ciphertext"])
        plain[f"item-{i}"] = data
    env["KG_T_KEY"] = key
    return env, plain


def kg(env: dict[str, str], *args: str, stdin: str | None = None, code: int = 0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "keyguard", *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == code, (args, proc.stdout, proc.stderr)
    return proc


def _check_items(bao: Bao, env: dict[str, str], plain: dict[str, bytes]) -> None:
    items = {i["name"]: i for i in json.loads(kg(env, "data", "list", "--json").stdout)}
    assert set(items) == set(plain)  # none lost
    key = env["KG_T_KEY"]
    info = _bao(bao, "GET", f"transit/keys/{key}").json()["data"]
    for name, item in items.items():
        ct = _ciphertext(env, name)
        assert not ct.startswith("vault:v1:"), name  # rewrapped off the leaked version
        reply = _bao(bao, "POST", f"transit/decrypt/{key}", {"ciphertext": ct})
        assert reply.status_code == 200, (name, reply.text)
        assert base64.b64decode(reply.json()["data"]["plaintext"]) == plain[name]
        assert item["version"] >= info["min_decryption_version"]


def _ciphertext(env: dict[str, str], name: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(env["KEYGUARD_DATABASE_URL"])
    with engine.connect() as conn:
        value = conn.execute(text("SELECT ciphertext FROM data_items WHERE name = :n"), {"n": name}).scalar_one()
    engine.dispose()
    return str(value)


def test_respond_rewraps_registered_ciphertexts(tmp_path: Path, bao: Bao) -> None:
    env, plain = _setup(tmp_path, bao, "home")
    ref = f"bao/transit/{env['KG_T_KEY']}"
    old = _ciphertext(env, "item-0")
    done = json.loads(kg(env, "respond", "--resource", ref, "--exposed-at", "-1h", "--yes", "--json").stdout)
    assert done["rewrapped"] == ITEMS
    contain = next(s for s in done["steps"] if s["step"] == "contain")
    assert contain["proof"]["is_dead"]  # the leaked version's ciphertexts are refused
    assert _bao(bao, "POST", f"transit/decrypt/{env['KG_T_KEY']}", {"ciphertext": old}).status_code >= 400
    _check_items(bao, env, plain)
    show = json.loads(kg(env, "incident", "show", str(done["incident"]), "--json").stdout)
    tasks = {t["id"]: t["status"] for p in show["phases"] for t in p["tasks"]}
    assert tasks["rewrap-data"] == "done" and "manual-deliver" in tasks  # transit has no delivery


def test_kill_9_at_any_commit_then_rerun_loses_no_ciphertext(tmp_path: Path, bao: Bao) -> None:
    def args(env: dict[str, str]) -> list[str]:
        return ["respond", "--resource", f"bao/transit/{env['KG_T_KEY']}", "--exposed-at", "-1h", "--yes", "--json"]

    env, _ = _setup(tmp_path, bao, "count")
    total = killpoint.commits(killpoint.run("count", 0, args(env), env))
    points = sorted({max(1, total * k // 5) for k in range(1, 5)})
    for n in points:
        env_n, plain_n = _setup(tmp_path, bao, f"kill{n}")
        killed = killpoint.run("after", n, args(env_n), env_n)
        assert killed.returncode != 0, f"not killed at commit {n}"
        kg(env_n, *args(env_n))
        _check_items(bao, env_n, plain_n)
        assert kg(env_n, "audit", "verify").returncode == 0
