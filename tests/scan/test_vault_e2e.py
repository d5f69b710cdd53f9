"""End to end with the real vault: a key of keyguard's own, leaked in an old commit, opens
an incident naming that commit, its author and date."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from keyguard.cli.main import main

from .conftest import commit

pytest.importorskip("keyguard.runtime")


@pytest.mark.slow
def test_old_commit_leak_opens_incident(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KEYGUARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KEYGUARD_PASSPHRASE", "correct horse battery staple")
    assert main(["init", "--root", "passphrase", "--yes"]) == 0
    material = secrets.token_bytes(32).hex()
    keyfile = tmp_path / "aes.key"
    keyfile.write_text(material)
    assert (
        main(
            [
                "key",
                "import",
                "payments-db-master",
                "--in",
                str(keyfile),
                "--purpose",
                "encrypt",
                "--tier",
                "high",
            ]
        )
        == 0
    )
    (repo / "settings.py").write_text(f"MASTER_KEY = '{material}'\n")
    leak = commit(repo, "add settings", "2023-05-04T08:30:00+00:00", "Mallory Dev")
    (repo / "settings.py").write_text("MASTER_KEY = os.environ['MASTER_KEY']\n")
    commit(repo, "use env", "2023-06-01T08:30:00+00:00")
    capsys.readouterr()
    code = main(["scan", str(repo), "--git", "--open-incident", "--json"])
    out = capsys.readouterr()
    assert code == 1
    [finding] = json.loads(out.out)
    assert finding["managed_key"] == {"name": "payments-db-master", "version": 1}
    assert finding["severity"] == "critical" and finding["commit"] == leak
    assert material not in out.out and material not in out.err
    assert main(["incident", "list", "--json"]) == 0
    [incident] = json.loads(capsys.readouterr().out)
    assert incident["exposed_at"].startswith("2023-05-04T08:30:00")
    assert leak[:12] in incident["source"] and "Mallory Dev" in incident["source"]
