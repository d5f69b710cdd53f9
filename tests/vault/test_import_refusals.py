"""Issue 12 point 7: compromised material never comes back; weak keys and weak KDF parameters are refused.

Storage tests run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from keyguard.audit.reading import iter_events
from keyguard.errors import KeyRejectedError, UsageError
from keyguard.store.db import create_db_engine, migrate
from keyguard.vault.barrier import live_generations
from keyguard.vault.keyimport import secret_weakness
from keyguard.vault.roots import ARGON2_MIN_MEMORY_KIB, PassphraseRoot, create_root, open_root
from keyguard.vault.service import Vault


def _pem(private: object) -> bytes:
    return private.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _import_refusals(vault: Vault) -> list[dict[str, object]]:
    return [e for e in iter_events(vault.engine) if e["op"] == "key.import" and e["result"] == "denied"]


def test_a_compromised_version_cannot_be_reimported(vault, admin) -> None:
    material = secrets.token_bytes(32)
    vault.import_key(admin, "pay", material.hex().encode(), "encrypt", "high")
    vault.set_state(admin, "pay", 1, "compromised")
    attempts = [
        ("pay", material.hex().encode(), "encrypt", None),  # as a new active version of the same key
        ("pay-new", base64.b64encode(material), "encrypt", None),  # under another name, another encoding
        ("pay-cc", material, "encrypt", "chacha20-poly1305"),  # as another algorithm
    ]
    for name, data, purpose, algorithm in attempts:
        with pytest.raises(KeyRejectedError, match="pay@1, which is compromised") as refused:
            vault.import_key(admin, name, data, purpose, algorithm=algorithm)
        assert refused.value.exit_code == 2 and refused.value.http_status == 422
    assert list(vault.key_info("pay").versions) == [1]
    assert [k.name for k in vault.list_keys(admin)] == ["pay"]
    refusals = _import_refusals(vault)
    assert [e["key"] for e in refusals] == ["pay", "pay-new", "pay-cc"]
    assert all("compromised" in str(e["reason"]) for e in refusals)
    assert material.hex() not in json.dumps(list(iter_events(vault.engine)))


def test_generated_and_destroyed_versions_stay_out_too(vault, admin) -> None:
    vault.create_key(admin, "gen", "encrypt")
    leaked = vault.loaded_version("gen", 1, allow_blocked=False).secret_bytes()
    vault.rotate(admin, "gen")
    vault.set_state(admin, "gen", 1, "compromised")
    with pytest.raises(KeyRejectedError, match="gen@1, which is compromised"):
        vault.import_key(admin, "gen", leaked, "encrypt")
    signer = ec.generate_private_key(ec.SECP256R1())
    vault.import_key(admin, "sig", _pem(signer), "sign")
    vault.set_state(admin, "sig", 1, "compromised")
    vault.set_state(admin, "sig", 1, "destroyed")  # material erased, fingerprint kept
    with pytest.raises(KeyRejectedError, match="sig@1, which is destroyed"):
        vault.import_key(admin, "sig", _pem(signer), "sign")
    live = ec.generate_private_key(ec.SECP256R1())
    vault.import_key(admin, "live", _pem(live), "sign")
    with pytest.raises(KeyRejectedError, match="already held as live@1"):
        vault.import_key(admin, "copy", _pem(live), "sign")
    assert len(_import_refusals(vault)) == 3


def test_weak_keys_are_refused_with_the_reason(vault, admin) -> None:
    weak = [
        (bytes(32), "encrypt", "all-zero or constant"),
        (bytes(32).hex().encode(), "encrypt", "all-zero or constant"),
        (b"\xff" * 32, "encrypt", "all-zero or constant"),
        (bytes(range(32)), "encrypt", "counting or repeating"),
        (base64.b64encode(bytes(range(100, 132))), "encrypt", "counting or repeating"),
        (b"\x01\x02\x03\x04" * 8, "encrypt", "low entropy"),
        (base64.b64encode(b"x" * 20), "mac", "all-zero or constant"),
        (_pem(rsa.generate_private_key(public_exponent=3, key_size=2048)), "sign", "exponent 3"),
        (_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "sign", "below the minimum of 2048"),
        (_pem(ec.generate_private_key(ec.SECP224R1())), "sign", "below P-256"),
    ]
    for index, (data, purpose, reason) in enumerate(weak):
        with pytest.raises(KeyRejectedError, match=reason) as refused:
            vault.import_key(admin, f"weak{index}", data, purpose)
        assert refused.value.exit_code == 2
    assert vault.list_keys(admin) == []
    refusals = _import_refusals(vault)
    assert len(refusals) == len(weak) and all(str(e["reason"]).startswith("weak key: ") for e in refusals)


def test_random_secrets_pass_the_weakness_test() -> None:
    for size in (16, 20, 32, 64, 300):
        for _ in range(200):
            assert secret_weakness(os.urandom(size)) is None


def test_weak_kdf_parameters_are_refused_on_creation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KEYGUARD_KDF_MEMORY_KIB", "32")
    with pytest.raises(UsageError, match="memory 32 KiB < 19456 KiB") as refused:
        PassphraseRoot.create("correct horse battery staple")
    assert refused.value.exit_code == 2
    with pytest.raises(UsageError, match="weak Argon2id"):
        create_root("passphrase", tmp_path, {"KEYGUARD_PASSPHRASE": "pw"})
    monkeypatch.setenv("KEYGUARD_KDF_MEMORY_KIB", str(ARGON2_MIN_MEMORY_KIB))
    params = PassphraseRoot.create("correct horse battery staple").params()
    assert params["memory_kib"] >= 19456 and params["iterations"] >= 2 and params["lanes"] >= 1


def test_a_root_written_with_weak_parameters_opens_with_a_warning(
    db_url: str, admin, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_db_engine(db_url)
    migrate(engine)
    legacy = PassphraseRoot("pw", os.urandom(16), 32, 1, 1)  # what earlier versions accepted
    vault = Vault.initialize(engine, legacy)
    vault.create_key(admin, "k", "encrypt")
    params = live_generations(engine)[0].root_params
    with caplog.at_level(logging.WARNING, logger="keyguard.vault"):
        reopened = Vault.open(engine, open_root("passphrase", params, {"KEYGUARD_PASSPHRASE": "pw"}))
    assert "weak Argon2id parameters (memory 32 KiB < 19456 KiB, iterations 1 < 2)" in caplog.text
    assert "--rotate-root" in caplog.text
    assert reopened.key_info("k").name == "k"
    engine.dispose()
