"""An operator may list and revoke leases (containment of a leaked lease), not issue or renew them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from keyguard.vault.principal import Principal


def test_operator_role_may_list_and_revoke_leases_only() -> None:
    operator = Principal(name="ops", role="operator")
    assert operator.may("lease.read") and operator.may("lease.revoke")
    assert not operator.may("lease.issue") and not operator.may("lease.renew")
    assert not Principal(name="a", role="auditor").may("lease.revoke")


def test_operator_token_reaches_lease_list_and_revoke_on_the_cli(tmp_path: Path) -> None:
    env = dict(os.environ, KEYGUARD_HOME=str(tmp_path / "home"),
               KEYGUARD_DATABASE_URL=f"sqlite:///{tmp_path / 'kg.db'}")
    for name in ("KEYGUARD_TOKEN", "KEYGUARD_OTP", "KEYGUARD_MFA"):
        env.pop(name, None)

    def kg(*args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "keyguard", *args], env={**env, **(extra or {})},
                              capture_output=True, text=True, timeout=120)

    assert kg("init").returncode == 0
    assert kg("client", "create", "oncall", "--role", "operator").returncode == 0
    token = json.loads(kg("client", "token", "oncall", "--json").stdout)["token"]
    as_operator = {"KEYGUARD_TOKEN": token}
    listed = kg("lease", "list", "--json", extra=as_operator)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    revoked = kg("lease", "revoke", "--prefix", "pg/role/readonly", "--json", extra=as_operator)
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["revoked"] == []
    renewed = kg("lease", "renew", "nosuch", "--ttl", "1h", extra=as_operator)
    assert renewed.returncode == 3 and "may not" in renewed.stderr.lower()
