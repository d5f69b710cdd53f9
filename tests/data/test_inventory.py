from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert

from keyguard.crypto import envelope
from keyguard.data.inventory import DataInventory
from keyguard.errors import ConflictError, InvalidTag, UsageError
from keyguard.store.tables import DataItem


def _seed(vault, n: int, key: str = "k") -> None:
    loaded = vault.loaded_version(key, 1, allow_blocked=False)
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        ctx = {"row": i}
        payload = loaded.encrypt(f"secret-{i}".encode(), envelope.associated_data(key, 1, ctx))
        rows.append(
            {
                "name": f"item-{i}",
                "data_class": "pii",
                "records": 10,
                "key_name": key,
                "version": 1,
                "ciphertext": envelope.Ciphertext(key, 1, payload).text(),
                "context": ctx,
                "created_at": now,
                "updated_at": now,
            }
        )
    with vault.engine.begin() as conn:
        conn.execute(insert(DataItem), rows)


def _all_decrypt(vault, admin, n: int) -> set[int]:
    from sqlalchemy import select

    with vault.engine.connect() as conn:
        rows = conn.execute(select(DataItem.name, DataItem.ciphertext, DataItem.context, DataItem.version)).all()
    assert len(rows) == n
    versions = set()
    for name, ct, ctx, version in rows:
        i = int(name.split("-")[1])
        parsed = envelope.parse(ct)
        assert parsed.version == version
        loaded = vault.loaded_version("k", version, allow_blocked=True)
        assert loaded.decrypt(parsed.payload, envelope.associated_data("k", version, ctx)) == f"secret-{i}".encode()
        versions.add(version)
    return versions


def test_register_and_list(vault, admin) -> None:
    vault.create_key(admin, "k", "encrypt")
    inv = DataInventory(vault)
    ct, _ = vault.encrypt(admin, "k", b"dek", {"t": 1})
    doc = inv.register(admin, "customers", "pii", 120_000, ct, {"t": 1})
    assert doc["version"] == 1
    assert inv.items(admin) == [
        {
            **inv.items(admin)[0],
            "name": "customers",
            "class": "pii",
            "records": 120000,
            "key": "k",
            "version": 1,
        }
    ]
    with pytest.raises(ConflictError):
        inv.register(admin, "customers", "pii", 1, ct, {"t": 1})
    with pytest.raises(InvalidTag):
        inv.register(admin, "other", "pii", 1, ct, {"t": 2})
    with pytest.raises(UsageError):
        inv.register(admin, "x", "secretz", 1, ct, {"t": 1})


def test_rewrap_moves_everything_and_is_idempotent(vault, admin) -> None:
    vault.create_key(admin, "k", "encrypt")
    _seed(vault, 250)
    vault.rotate(admin, "k", "chacha20-poly1305")
    vault.set_state(admin, "k", 1, "compromised")
    inv = DataInventory(vault)
    report = inv.rewrap(admin, "k", batch_size=60)
    assert (report.rewrapped, report.remaining, report.to_version) == (250, 0, 2)
    assert _all_decrypt(vault, admin, 250) == {2}
    assert inv.rewrap(admin, "k").rewrapped == 0


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        KEYGUARD_HOME=str(tmp_path / "home"),
        KEYGUARD_DATABASE_URL=url,
        KEYGUARD_KEYFILE=str(tmp_path / "root.key"),
    )
    return env


def _moved(vault, version: int) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    with vault.engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(DataItem.version == version)).scalar_one())


@pytest.mark.slow
def test_kill_9_during_rewrap_loses_nothing(vault, admin, db_url: str, tmp_path: Path) -> None:
    """kill -9 the rewrap process while it is moving items (seen in the database), several times."""
    n = 6000
    vault.create_key(admin, "k", "encrypt")
    _seed(vault, n)
    vault.rotate(admin, "k")
    env = _env(tmp_path, db_url)
    cmd = [sys.executable, "-m", "keyguard", "data", "rewrap", "--key", "k", "--batch", "20", "--json"]
    kills = 0
    for _ in range(3):
        before = _moved(vault, 2)
        if before == n:
            break
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if _moved(vault, 2) > before:  # mid-flight: some batches committed, more to come
                proc.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.005)
        proc.wait()
        _all_decrypt(vault, admin, n)  # after every kill: every item still decrypts
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _all_decrypt(vault, admin, n) == {2}
    assert kills >= 1


def _rewrap_events(vault) -> list[str]:  # type: ignore[no-untyped-def]
    from keyguard.audit.reading import iter_events

    return [e["result"] for e in iter_events(vault.engine) if e["op"] == "data.rewrap"]


def test_a_failed_audit_append_commits_no_rewrap_and_no_registration(
    vault, admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data change and its audit event are one transaction: neither lands without the other."""
    vault.create_key(admin, "k", "encrypt")
    _seed(vault, 30)
    vault.rotate(admin, "k")
    inv = DataInventory(vault)
    ciphertext = vault.encrypt(admin, "k", b"x")[0]

    def refuse(*_a, **_k):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    monkeypatch.setattr(vault.audit, "append_in", refuse)
    with pytest.raises(Exception):  # noqa: B017 - the audit write error, whatever its class
        inv.rewrap(admin, "k", batch_size=10)
    with pytest.raises(Exception):  # noqa: B017
        inv.register(admin, "new-item", "pii", 1, ciphertext)
    monkeypatch.undo()
    assert _moved(vault, 2) == 0 and "ok" not in _rewrap_events(vault)
    assert not [i for i in inv.items(admin) if i["name"] == "new-item"]
    report = inv.rewrap(admin, "k", batch_size=10)
    assert report.rewrapped == 30 and _rewrap_events(vault).count("ok") == 3
