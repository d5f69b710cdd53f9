"""``init --rotate-root`` killed with SIGKILL at every step, on both backends, then rerun.

Each kill point starts from a copy of the same seeded vault (keys of several
algorithms, a destroyed version, a TOTP client, registered data, the audit
log). The rotation runs as the real CLI in a child process (tests/killpoint.py)
that kills itself inside or right after its Nth committing transaction; the
rerun is the same command with the same environment. Afterwards everything
must decrypt under the new root, once, and the old root must no longer open
the vault.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.conftest import PG_ADMIN_URL
from tests.killpoint import Copies, child_env, commits, rerun, run

from keyguard.audit.reading import verify_log
from keyguard.data.inventory import DataInventory
from keyguard.errors import KeyguardError
from keyguard.store.db import create_db_engine, migrate
from keyguard.store.tables import Client, DataItem
from keyguard.vault.barrier import live_generations
from keyguard.vault.clients import ClientService
from keyguard.vault.principal import local_admin
from keyguard.vault.roots import KeyFileRoot, open_root
from keyguard.vault.service import Vault

pytestmark = pytest.mark.slow

KDF_KIB = "19456"  # the floor keyguard accepts for a passphrase root
NEW_PASSPHRASE = "a new and longer passphrase"


@dataclass
class Seeded:
    """What the seeded vault holds, to check after the rotation."""

    ciphertexts: list[tuple[str, bytes]] = field(default_factory=list)
    signature: bytes = b""
    secrets: tuple[bytes, bytes] = (b"", b"")
    totp: bytes = b""
    data: dict[str, bytes] = field(default_factory=dict)


def _seed(url: str, old_key: Path) -> Seeded:
    admin = local_admin()
    engine = create_db_engine(url)
    migrate(engine)
    vault = Vault.initialize(engine, KeyFileRoot.create(old_key))
    seeded = Seeded()
    vault.create_key(admin, "a", "encrypt")
    seeded.ciphertexts.append((vault.encrypt(admin, "a", b"a-1")[0], b"a-1"))
    vault.rotate(admin, "a", "chacha20-poly1305")
    seeded.ciphertexts.append((vault.encrypt(admin, "a", b"a-2")[0], b"a-2"))
    vault.create_key(admin, "d", "encrypt")
    vault.rotate(admin, "d")
    vault.set_state(admin, "d", 1, "disabled")
    vault.set_state(admin, "d", 1, "destroyed")
    seeded.ciphertexts.append((vault.encrypt(admin, "d", b"d-2")[0], b"d-2"))
    vault.create_key(admin, "s", "sign", "ed25519")
    seeded.signature = vault.sign(admin, "s", b"message")[0]
    vault.create_key(admin, "m", "mac", "hmac-sha256")
    inventory = DataInventory(vault)
    for i in range(3):
        ct = vault.encrypt(admin, "a", f"dek-{i}".encode(), {"row": i})[0]
        inventory.register(admin, f"table-{i}", "pii", 100, ct, {"row": i})
        seeded.data[f"table-{i}"] = f"dek-{i}".encode()
    clients = ClientService(vault)
    clients.create(admin, "ops", "operator", [("a", "decrypt")])
    seeded.totp = clients.enroll_mfa(admin, "ops")[0].encode()
    seeded.secrets = (vault.fingerprint_key, vault.checkpoint_key)
    vault.close()
    engine.dispose()
    return seeded


def _check(url: str, seeded: Seeded, old_key: Path, new_env: dict[str, str]) -> None:
    """Everything decrypts under the new root, and the old root no longer opens the vault."""
    admin = local_admin()
    engine = create_db_engine(url)
    try:
        gens = live_generations(engine)
        assert [g.generation for g in gens] == [2], "one live generation, made by one rotation"
        vault = Vault.open(engine, open_root(gens[0].root_kind, gens[0].root_params, new_env))
        for ct, plain in seeded.ciphertexts:
            assert vault.decrypt(admin, ct)[0] == plain
        assert vault.verify(admin, "s", b"message", seeded.signature)
        assert vault.sign(admin, "m", b"x")[0]
        assert (vault.fingerprint_key, vault.checkpoint_key) == seeded.secrets
        with engine.connect() as conn:
            totp = conn.execute(select(Client.totp_sealed).where(Client.name == "ops")).scalar_one()
            items = conn.execute(select(DataItem.name, DataItem.ciphertext, DataItem.context)).all()
        assert vault.barrier.unseal(2, totp, b"client-totp:ops") == seeded.totp
        assert {name: vault.decrypt(admin, ct, ctx)[0] for name, ct, ctx in items} == seeded.data
        verify_log(engine, vault.checkpoint_key)
        vault.close()
        with pytest.raises(KeyguardError):
            Vault.open(engine, KeyFileRoot(old_key))
    finally:
        engine.dispose()


@pytest.fixture
def copies(db_url: str, tmp_path: Path) -> Iterator[Copies]:
    made = Copies(db_url, tmp_path, PG_ADMIN_URL)
    yield made
    made.drop()


def _env(url: str, home: Path, old_key: Path, **extra: str) -> dict[str, str]:
    # three re-seal batches of two key versions each
    return child_env(
        url,
        home,
        KEYGUARD_KEYFILE=str(old_key),
        KEYGUARD_KDF_MEMORY_KIB=KDF_KIB,
        KILLPOINT_SET="keyguard.vault.rootrotate:_BATCH=2",
        **extra,
    )


ROTATE = ["init", "--rotate-root", "--root", "passphrase", "--yes", "--json"]


def test_rotate_root_killed_at_every_step_finishes_on_rerun(copies: Copies, tmp_path: Path) -> None:
    """kill -9 inside and right after every committing transaction; the same command finishes."""
    old_key = tmp_path / "old.key"
    seeded = _seed(copies.seed_url, old_key)
    extra = {"KEYGUARD_NEW_PASSPHRASE": NEW_PASSPHRASE}
    new_env = {"KEYGUARD_PASSPHRASE": NEW_PASSPHRASE}
    url = copies.clone("count")
    total = commits(run("count", 0, ROTATE, _env(url, tmp_path / "home-count", old_key, **extra)))
    _check(url, seeded, old_key, new_env)
    assert total >= 5, "the journal, several re-seal batches and the final switch"
    failures: list[str] = []
    for mode in ("in", "after"):
        for n in range(1, total + 1):
            point = f"{mode}-{n}"
            url = copies.clone(point)
            env = _env(url, tmp_path / f"home-{point}", old_key, **extra)
            killed = run(mode, n, ROTATE, env)
            assert killed.returncode == -9, f"{point}: not killed ({killed.returncode}: {killed.stderr})"
            again = rerun(ROTATE, env)
            if again.returncode != 0:
                failures.append(f"{point}: rerun exit {again.returncode}: {again.stderr.strip()}")
                continue
            report: dict[str, Any] = json.loads(again.stdout)
            try:
                assert report["generation"] == 2
                _check(url, seeded, old_key, new_env)
            except AssertionError as exc:
                failures.append(f"{point}: {exc}")
            except KeyguardError as exc:
                failures.append(f"{point}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)


def test_rotate_root_to_a_named_keyfile_killed_early(copies: Copies, tmp_path: Path) -> None:
    """The new key file exists before the journal is written: a rerun with the same file finishes."""
    old_key = tmp_path / "old.key"
    seeded = _seed(copies.seed_url, old_key)
    args = ["init", "--rotate-root", "--root", "keyfile", "--yes", "--json"]
    for mode, n in (("in", 1), ("after", 1), ("in", 2)):
        point = f"{mode}-{n}"
        new_key = tmp_path / f"new-{point}.key"
        url = copies.clone(f"kf-{point}")
        env = _env(url, tmp_path / f"home-kf-{point}", old_key, KEYGUARD_NEW_KEYFILE=str(new_key))
        killed = run(mode, n, args, env)
        assert killed.returncode == -9, killed.stderr
        assert new_key.exists()
        again = rerun(args, env)
        assert again.returncode == 0, f"{point}: {again.stderr}"
        _check(url, seeded, old_key, {"KEYGUARD_KEYFILE": str(new_key)})
