"""Issue 12 points 6-7 on the command line: a client's token (``KEYGUARD_TOKEN``) gets the
same authorisation for incidents and alerts as over the API; token lifetimes and weak KDF
parameters are refused with exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def kg(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    env = dict(os.environ)
    env.update(KEYGUARD_HOME=str(tmp_path / "home"), KEYGUARD_DATABASE_URL=db_url)
    for name in ("KEYGUARD_TOKEN", "KEYGUARD_OTP", "KEYGUARD_MFA"):
        env.pop(name, None)

    def run(*args: str, code: int = 0, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(
            [sys.executable, "-m", "keyguard", *args],
            capture_output=True,
            env={**env, **(extra or {})},
            timeout=120,
        )
        assert proc.returncode == code, (args, proc.returncode, proc.stderr.decode())
        return proc

    run("init")
    return run


def _token(kg, name: str, role: str, *grants: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    kg("client", "create", name, "--role", role, *(f"--grant={g}" for g in grants))
    return {"KEYGUARD_TOKEN": json.loads(kg("client", "token", name, "--json").stdout)["token"]}


def test_incident_and_alert_commands_apply_the_api_grants(kg) -> None:  # type: ignore[no-untyped-def]
    kg("key", "create", "pay")
    service = _token(kg, "billing", "service", "pay:encrypt")
    auditor = _token(kg, "audit", "auditor")
    operator = _token(kg, "oncall", "operator")
    for args in (
        ("incident", "open", "--key", "pay", "--exposed-at", "-1h"),
        ("incident", "list"),
        ("alert", "list"),
    ):
        refused = kg(*args, code=3, extra=service)
        assert b"billing may not" in refused.stderr
    kg("incident", "open", "--key", "pay", "--exposed-at", "-1h", code=3, extra=auditor)
    opened = json.loads(kg("incident", "open", "--key", "pay", "--exposed-at", "-1h", "--json", extra=operator).stdout)
    assert [i["id"] for i in json.loads(kg("incident", "list", "--json", extra=auditor).stdout)] == [opened["id"]]
    kg("incident", "close", str(opened["id"]), "--force", code=3, extra=auditor)
    kg("alert", "list", extra=auditor)
    audit = json.loads(kg("audit", "tail", "--json", "-n", "100").stdout)
    denied = {(e["actor"], e["op"]) for e in audit if e["result"] == "denied"}
    assert {("billing", "incident.write"), ("billing", "incident.read"), ("audit", "incident.write")} <= denied


def test_token_lifetime_over_the_maximum_exits_2(kg) -> None:  # type: ignore[no-untyped-def]
    kg("client", "create", "svc", "--role", "service")
    refused = kg("client", "token", "svc", "--ttl", str(30 * 86400), code=2)
    assert b"exceeds the maximum of 1h" in refused.stderr
    kg("client", "token", "svc", "--ttl", "600")


def test_init_refuses_weak_kdf_parameters(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KEYGUARD_HOME": str(tmp_path / "weak"),
        "KEYGUARD_PASSPHRASE": "correct horse battery staple",
        "KEYGUARD_KDF_MEMORY_KIB": "32",
    }
    env.pop("KEYGUARD_DATABASE_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "keyguard", "init", "--root", "passphrase"],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2 and b"weak Argon2id parameters" in proc.stderr, proc.stderr
