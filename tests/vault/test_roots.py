from __future__ import annotations

import os
from pathlib import Path

import pytest

from keyguard.errors import RootKeyError
from keyguard.store.db import create_db_engine, migrate
from keyguard.vault.barrier import live_generations
from keyguard.vault.rootrotate import rotate_root
from keyguard.vault.roots import KeyFileRoot, PassphraseRoot, create_root, open_root
from keyguard.vault.service import Vault

FAST = {"KEYGUARD_KDF_MEMORY_KIB": "19456"}


@pytest.fixture
def fast_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYGUARD_KDF_MEMORY_KIB", "19456")


def test_passphrase_root(db_url: str, admin, fast_kdf) -> None:
    engine = create_db_engine(db_url)
    migrate(engine)
    root = PassphraseRoot.create("correct horse battery staple")
    vault = Vault.initialize(engine, root)
    vault.create_key(admin, "k", "encrypt")
    ct, _ = vault.encrypt(admin, "k", b"x")
    gen = live_generations(engine)[0]
    assert gen.root_params["kdf"] == "argon2id"
    again = Vault.open(
        engine,
        open_root("passphrase", gen.root_params, {"KEYGUARD_PASSPHRASE": "correct horse battery staple"}),
    )
    assert again.decrypt(admin, ct)[0] == b"x"
    with pytest.raises(RootKeyError, match="wrong passphrase"):
        Vault.open(engine, open_root("passphrase", gen.root_params, {"KEYGUARD_PASSPHRASE": "wrong"}))
    engine.dispose()


def test_keyfile_permissions(tmp_path: Path) -> None:
    root = KeyFileRoot.create(tmp_path / "root.key")
    assert (tmp_path / "root.key").stat().st_mode & 0o777 == 0o600
    os.chmod(tmp_path / "root.key", 0o644)
    with pytest.raises(RootKeyError, match="readable by others"):
        KeyFileRoot(tmp_path / "root.key")
    del root
    (tmp_path / "bad.key").write_bytes(b"short")
    os.chmod(tmp_path / "bad.key", 0o600)
    with pytest.raises(RootKeyError, match="256-bit"):
        KeyFileRoot(tmp_path / "bad.key")


def test_wrong_keyfile(db_url: str, tmp_path: Path, admin) -> None:
    engine = create_db_engine(db_url)
    migrate(engine)
    Vault.initialize(engine, KeyFileRoot.create(tmp_path / "a.key"))
    with pytest.raises(RootKeyError):
        Vault.open(engine, KeyFileRoot.create(tmp_path / "b.key"))
    engine.dispose()


def test_rotate_root_without_downtime(db_url: str, tmp_path: Path, admin, fast_kdf) -> None:
    engine = create_db_engine(db_url)
    migrate(engine)
    old_root = KeyFileRoot.create(tmp_path / "old.key")
    writer = Vault.initialize(engine, old_root)
    for name in ("a", "b", "c"):
        writer.create_key(admin, name, "encrypt")
    ct, _ = writer.encrypt(admin, "a", b"payload")
    reader = Vault.open(engine, old_root)  # a running reader holding the old keyring
    env = {"KEYGUARD_KEYFILE": str(tmp_path / "old.key"), "KEYGUARD_NEW_PASSPHRASE": "new secret"}
    report = rotate_root(engine, lambda: create_root("passphrase", tmp_path, env, rotating=True), env)
    assert report["generation"] == 2 and report["resealed"] >= 3
    reader._invalidate()
    assert reader.decrypt(admin, ct)[0] == b"payload"  # the old reader follows the chain
    new_params = live_generations(engine)[0].root_params
    fresh = Vault.open(engine, open_root("passphrase", new_params, {"KEYGUARD_PASSPHRASE": "new secret"}))
    assert fresh.decrypt(admin, ct)[0] == b"payload"
    assert len(live_generations(engine)) == 1
    with pytest.raises(Exception):  # noqa: B017 - the old root no longer opens the vault
        Vault.open(engine, old_root)
    engine.dispose()


def test_rotate_root_resumes_after_crash(db_url: str, tmp_path: Path, admin) -> None:
    engine = create_db_engine(db_url)
    migrate(engine)
    old_root = KeyFileRoot.create(tmp_path / "old.key")
    vault = Vault.initialize(engine, old_root)
    vault.create_key(admin, "k", "encrypt")
    ct, _ = vault.encrypt(admin, "k", b"x")
    import keyguard.vault.rootrotate as rr

    original = rr._reseal_key_versions

    def crash(*_a, **_k):  # the process dies after step 1
        raise KeyboardInterrupt

    rr._reseal_key_versions = crash
    new_path = tmp_path / "new.key"
    try:
        with pytest.raises(KeyboardInterrupt):
            rotate_root(
                engine,
                lambda: KeyFileRoot.create(new_path),
                {"KEYGUARD_KEYFILE": str(tmp_path / "old.key")},
            )
    finally:
        rr._reseal_key_versions = original
    assert len(live_generations(engine)) == 2
    mid = Vault.open(engine, KeyFileRoot(new_path))  # readers with the new root work mid-rotation
    assert mid.decrypt(admin, ct)[0] == b"x"
    report = rotate_root(engine, lambda: KeyFileRoot(new_path))
    assert report["resumed"] is True and len(live_generations(engine)) == 1
    assert Vault.open(engine, KeyFileRoot(new_path)).decrypt(admin, ct)[0] == b"x"
    engine.dispose()
