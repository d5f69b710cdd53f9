"""Issue 4's "done when": a vault key leaked in an old commit opens an incident naming the commit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def _git(repo: Path, *args: str, date: str | None = None) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="Dana Dev",
        GIT_AUTHOR_EMAIL="dana@example.com",
        GIT_COMMITTER_NAME="Dana Dev",
        GIT_COMMITTER_EMAIL="dana@example.com",
    )
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


def test_leak_in_old_commit_opens_incident(tmp_path: Path, sqlite_url: str) -> None:
    env = dict(os.environ, KEYGUARD_HOME=str(tmp_path / "home"), KEYGUARD_DATABASE_URL=sqlite_url)
    env.pop("KEYGUARD_TOKEN", None)

    def kg(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "keyguard", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert kg("init").returncode == 0
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "k.pem").write_bytes(pem)
    assert (
        kg(
            "key",
            "import",
            "deploy-signer",
            "--in",
            str(tmp_path / "k.pem"),
            "--purpose",
            "sign",
            "--tier",
            "high",
        ).returncode
        == 0
    )
    secret = os.urandom(32)
    (tmp_path / "s.key").write_bytes(secret.hex().encode())
    assert kg("key", "import", "session-enc", "--in", str(tmp_path / "s.key"), "--purpose", "encrypt").returncode == 0

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "README.md").write_text("service\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "init", date="2026-09-01T09:00:00Z")
    (repo / "deploy").mkdir()
    (repo / "deploy" / "signer.pem").write_bytes(pem)
    (repo / "config.env").write_text(f"SESSION_KEY={secret.hex()}\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "deploy config", date="2026-09-15T14:30:00Z")
    leak_commit = _git(repo, "rev-parse", "HEAD").strip()
    _git(repo, "rm", "-q", "deploy/signer.pem", "config.env")
    _git(repo, "commit", "-qm", "oops, remove keys", date="2026-09-15T15:00:00Z")

    scan = kg("scan", "--git", str(repo), "--match-vault", "--open-incident", "--format", "json")
    assert scan.returncode == 1, scan.stderr
    findings = json.loads(scan.stdout)
    managed = {(f["managed_key"]["name"], f["commit"], f["author"]) for f in findings if f["managed_key"]}
    assert ("deploy-signer", leak_commit, "Dana Dev") in managed
    assert ("session-enc", leak_commit, "Dana Dev") in managed
    assert secret.hex() not in scan.stdout and "BEGIN" not in scan.stdout

    incidents = json.loads(kg("incident", "list", "--json").stdout)
    assert {(k["name"], k["version"]) for i in incidents for k in i["keys"]} >= {
        ("deploy-signer", 1),
        ("session-enc", 1),
    }
    incident = json.loads(kg("incident", "show", str(incidents[0]["id"]), "--json").stdout)
    assert incident["exposed_at"].startswith("2026-09-15T14:30:00")
    assert leak_commit[:12] in json.dumps(incident) and "Dana Dev" in json.dumps(incident)
    assert "committed to version control" in incident["root_cause"]
