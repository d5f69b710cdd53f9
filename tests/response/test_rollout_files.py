"""Files written outside the database: no planted names, no links followed, only under the roots."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keyguard.cli import context
from keyguard.errors import RefusedError, UsageError
from keyguard.response import rollout
from keyguard.response.rollout import RolloutPolicy
from keyguard.store.files import write_atomic

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "victim"
    path.write_text("precious\n")
    return path


# ---------------------------------------------------------------- point 8: temporary files


def test_write_output_ignores_a_planted_temporary_name(tmp_path: Path, victim: Path) -> None:
    out = tmp_path / "plain.bin"
    (tmp_path / f".{out.name}.tmp{os.getpid()}").symlink_to(victim)  # the name used to be predictable
    context.write_output(b"secret bytes", out)
    assert victim.read_text() == "precious\n"
    assert out.read_bytes() == b"secret bytes" and not out.is_symlink()
    assert out.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.glob(".plain.bin.*kg-tmp")] == []


def test_write_output_refuses_a_symlink_at_the_target(tmp_path: Path, victim: Path) -> None:
    out = tmp_path / "out.bin"
    out.symlink_to(victim)
    with pytest.raises(RefusedError, match="symbolic link"):
        context.write_output(b"secret", out)
    assert victim.read_text() == "precious\n" and out.is_symlink()


def test_write_atomic_temporary_file_is_private_until_renamed(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seen: list[int] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        seen.append(os.stat(src).st_mode & 0o777)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    os.umask(0o022)
    write_atomic(tmp_path / "pub.pem", b"public", mode=0o644)
    assert (tmp_path / "pub.pem").stat().st_mode & 0o777 == 0o644
    assert seen == [0o644]  # the final mode is set before the name appears; created 0600 by mkstemp


def test_rollout_ignores_planted_temporary_names(tmp_path: Path, victim: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    env_file = app / ".env"
    env_file.write_text("PAY=kg://pay/1\n")
    backup = f"{env_file.name}.kg-bak-{NOW.strftime('%Y%m%dT%H%M%SZ')}"
    for name in (env_file.name, backup):
        (app / f".{name}.tmp{os.getpid()}").symlink_to(victim)
    rollout.update_references(env_file, "pay", 2, NOW, policy=RolloutPolicy(roots=(app,)))
    assert victim.read_text() == "precious\n"
    assert env_file.read_text() == "PAY=kg://pay/2\n"
    assert (app / backup).read_text() == "PAY=kg://pay/1\n"


# ---------------------------------------------------------------- point 9: rollout targets


@pytest.fixture
def app(tmp_path: Path) -> Path:
    app = tmp_path / "etc" / "app"
    app.mkdir(parents=True)
    (app / ".env").write_text("PAY=kg://pay/1\n")
    return app


def test_rollout_refuses_everything_without_configured_roots(app: Path) -> None:
    with pytest.raises(RefusedError, match="outside the configured roots") as caught:
        rollout.update_references(app / ".env", "pay", 2, NOW)
    assert "[rollout] roots" in caught.value.hint and caught.value.exit_code == 3
    assert (app / ".env").read_text() == "PAY=kg://pay/1\n"


def test_rollout_refuses_relative_dotdot_and_outside_paths(app: Path, victim: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    policy = RolloutPolicy(roots=(app,))
    victim.write_text("PAY=kg://pay/1\n")
    monkeypatch.chdir(app)
    with pytest.raises(UsageError, match="absolute"):
        rollout.update_references(Path(".env"), "pay", 2, NOW, policy=policy)
    dotdot = app / ".." / ".." / ".." / "outside" / "victim"
    with pytest.raises(UsageError, match="'..'"):
        rollout.update_references(dotdot, "pay", 2, NOW, policy=policy)
    with pytest.raises(RefusedError, match="outside the configured roots"):
        rollout.update_references(victim, "pay", 2, NOW, policy=policy)
    assert victim.read_text() == "PAY=kg://pay/1\n"
    assert (app / ".env").read_text() == "PAY=kg://pay/1\n"


def test_rollout_refuses_symlinks_unless_allowed(app: Path, tmp_path: Path, victim: Path) -> None:
    victim.write_text("PAY=kg://pay/1\n")
    (app / "linked.env").symlink_to(victim)
    (app / "conf.d").symlink_to(victim.parent, target_is_directory=True)
    strict = RolloutPolicy(roots=(app,))
    for path in (app / "linked.env", app / "conf.d" / "victim"):
        with pytest.raises(RefusedError, match="symbolic link"):
            rollout.update_references(path, "pay", 2, NOW, policy=strict)
    # allowed, a link still may not lead out of the roots
    with pytest.raises(RefusedError, match="outside the configured roots"):
        rollout.update_references(app / "linked.env", "pay", 2, NOW, policy=RolloutPolicy((app,), True))
    assert victim.read_text() == "PAY=kg://pay/1\n"
    # allowed, and inside: the file the link points at is written, the link kept
    (app / "real.env").write_text("PAY=pay@1\n")
    (app / "current.env").symlink_to(app / "real.env")
    rollout.update_references(app / "current.env", "pay", 2, NOW, policy=RolloutPolicy((app,), True))
    assert (app / "current.env").is_symlink() and (app / "real.env").read_text() == "PAY=pay@2\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_rollout_keeps_owner_and_mode(app: Path) -> None:
    env_file = app / ".env"
    os.chown(env_file, 4242, 4343)
    os.chmod(env_file, 0o640)
    rollout.update_references(env_file, "pay", 2, NOW, policy=RolloutPolicy(roots=(app,)))
    backup = next(app.glob(".env.kg-bak-*"))
    for path in (env_file, backup):
        info = path.stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (4242, 4343, 0o640), path


def test_rollout_policy_from_keyguard_toml(tmp_path: Path, app: Path) -> None:
    config = tmp_path / "keyguard.toml"
    assert RolloutPolicy.load(config).roots == ()
    config.write_text(f'[rollout]\nroots = ["{app}"]\nallow_symlinks = true\n')
    assert RolloutPolicy.load(config) == RolloutPolicy((app,), True, config)
    config.write_text('[rollout]\nroots = ["etc/app"]\n')
    with pytest.raises(UsageError, match="absolute"):
        RolloutPolicy.load(config)


def test_cli_rollout_update_outside_roots_is_refused(tmp_path: Path, app: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGUARD_")}
    env.update(KEYGUARD_HOME=str(home))

    def kg(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "keyguard", *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)

    assert kg("init").returncode == 0
    assert kg("key", "create", "pay", "--purpose", "encrypt").returncode == 0
    made = kg(
        "client", "create", "billing", "--role", "service", "--grant", "pay:encrypt", "--reference", str(app / ".env")
    )
    assert made.returncode == 0, made.stderr
    assert kg("incident", "open", "--key", "pay@1", "--exposed-at", "-1h").returncode == 0
    assert kg("key", "rotate", "pay").returncode == 0
    refused = kg("incident", "rollout", "1", "--update")
    assert refused.returncode == 3, refused.stderr
    assert refused.stderr.startswith("keyguard: error: rollout target") and refused.stderr.count("\n") == 1
    assert "[rollout] roots" in refused.stderr
    assert (app / ".env").read_text() == "PAY=kg://pay/1\n"
    (home / "keyguard.toml").write_text(f'[rollout]\nroots = ["{app}"]\n')
    done = kg("incident", "rollout", "1", "--update", "--json")
    assert done.returncode in (0, 1), done.stderr  # 1: consumers not switched yet
    assert (app / ".env").read_text() == "PAY=kg://pay/2\n"
