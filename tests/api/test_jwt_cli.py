"""``keyguard client token NAME --jwt`` prints a JWT the API accepts (both backends)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jwt as pyjwt
import pytest
from fastapi.testclient import TestClient

from keyguard.api import create_app
from keyguard.config import Settings


@pytest.fixture
def kg(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if k not in ("KEYGUARD_TOKEN", "KEYGUARD_OTP", "KEYGUARD_MFA")}
    env.update(KEYGUARD_HOME=str(tmp_path / "home"), KEYGUARD_DATABASE_URL=db_url)
    for name in ("KEYGUARD_HOME", "KEYGUARD_DATABASE_URL"):
        monkeypatch.setenv(name, env[name])

    def run(*args: str, code: int = 0) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run([sys.executable, "-m", "keyguard", *args], capture_output=True, env=env, timeout=120)
        assert proc.returncode == code, (args, proc.returncode, proc.stderr.decode())
        return proc

    run("init")
    return run


def test_client_token_jwt(kg) -> None:  # type: ignore[no-untyped-def]
    kg("key", "create", "pay")
    kg("client", "create", "ops", "--role", "operator")
    printed = json.loads(kg("client", "token", "ops", "--jwt", "--json").stdout)
    claims = pyjwt.decode(printed["token"], options={"verify_signature": False})
    assert claims["sub"] == "ops" and claims["exp"] - claims["iat"] == 900 and printed["expires_at"]
    short = kg("client", "token", "ops", "--jwt", "--ttl", "60").stdout.decode().splitlines()[0]
    assert pyjwt.decode(short, options={"verify_signature": False})["exp"] - claims["iat"] in range(60, 70)
    refused = kg("client", "token", "ops", "--jwt", "--ttl", "3600", code=2).stderr.decode()
    assert refused.count("\n") == 1 and "exceeds the maximum of 15m" in refused
    from keyguard.runtime import open_vault

    vault = open_vault(Settings.from_env())
    with TestClient(create_app(vault=vault)) as api:
        r = api.get("/v1/keys", headers={"Authorization": f"Bearer {printed['token']}"})
        assert r.status_code == 200 and [k["name"] for k in r.json()] == ["pay"]
        kid = pyjwt.get_unverified_header(printed["token"])["kid"]
        assert kid in [k["kid"] for k in api.get("/.well-known/jwks.json").json()["keys"]]
    kg("client", "suspend", "ops")
    kg("client", "token", "ops", "--jwt", code=3)
