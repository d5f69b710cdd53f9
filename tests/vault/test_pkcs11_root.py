"""The PKCS#11 root of trust against a real SoftHSM2 token initialised here."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyguard.errors import RootKeyError

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "12345678"

pytestmark = pytest.mark.hsm


def _skip_reason() -> str | None:
    if not Path(MODULE).exists():
        return f"SoftHSM2 module {MODULE} missing (apt-get install softhsm2)"
    if shutil.which("softhsm2-util") is None:
        return "softhsm2-util missing (apt-get install softhsm2)"
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        return "python-pkcs11 missing (pip install 'keyguard[hsm]')"
    return None


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two fresh tokens ("kg-a", "kg-b") in a private SoftHSM2 token directory.

    SoftHSM2 reads SOFTHSM2_CONF when the module is first initialised in this
    process, so every token is created before the module is loaded.
    """
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    for label in ("kg-a", "kg-b"):
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--so-pin",
                "87654321",
                "--pin",
                PIN,
            ],
            check=True,
            env=env,
            capture_output=True,
        )
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        yield {
            "KEYGUARD_PKCS11_MODULE": MODULE,
            "KEYGUARD_PKCS11_TOKEN": "kg-a",
            "KEYGUARD_PKCS11_PIN": PIN,
        }
    finally:
        if old is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = old


def test_wrap_unwrap_round_trip(hsm: dict[str, str]) -> None:
    from keyguard.vault.pkcs11_root import Pkcs11Root

    root = Pkcs11Root.create_from_env(hsm)
    assert root.kind == "pkcs11"
    params = root.params()
    assert params["token"] == "kg-a" and params["label"].startswith("keyguard-root-")
    secret = os.urandom(32)
    wrapped = root.wrap(secret)
    assert secret not in wrapped and len(wrapped) == 12 + 32 + 16
    assert root.wrap(secret) != wrapped  # fresh nonce
    reopened = Pkcs11Root.from_env(hsm, label=params["label"])
    assert reopened.unwrap(wrapped) == secret


def test_each_generation_gets_its_own_key(hsm: dict[str, str]) -> None:
    from keyguard.vault.pkcs11_root import Pkcs11Root

    first, second = Pkcs11Root.create_from_env(hsm), Pkcs11Root.create_from_env(hsm)
    assert first.params()["label"] != second.params()["label"]
    with pytest.raises(RootKeyError, match="wrong HSM key"):
        second.unwrap(first.wrap(b"k" * 32))


def test_key_is_sensitive_and_not_extractable(hsm: dict[str, str]) -> None:
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass

    from keyguard.vault.pkcs11_root import Pkcs11Root

    root = Pkcs11Root.create_from_env(hsm)
    token = pkcs11.lib(MODULE).get_token(token_label="kg-a")
    with token.open(user_pin=PIN) as session:
        key = session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=root.label)
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.TOKEN] is True
        assert key[Attribute.VALUE_LEN] == 32


def test_wrong_pin_is_a_root_key_error(hsm: dict[str, str]) -> None:
    from keyguard.vault.pkcs11_root import Pkcs11Root

    label = Pkcs11Root.create_from_env(hsm).label
    with pytest.raises(RootKeyError, match="wrong PIN") as info:
        Pkcs11Root.from_env({**hsm, "KEYGUARD_PKCS11_PIN": "00000000"}, label=label)
    assert info.value.exit_code == 5
    assert "00000000" not in str(info.value) + info.value.hint


def test_missing_token_is_a_root_key_error(hsm: dict[str, str]) -> None:
    from keyguard.vault.pkcs11_root import Pkcs11Root

    with pytest.raises(RootKeyError, match="token 'nope' not found"):
        Pkcs11Root.from_env({**hsm, "KEYGUARD_PKCS11_TOKEN": "nope"}, label="keyguard-root")


def test_wrong_token_has_no_such_key(hsm: dict[str, str]) -> None:
    from keyguard.vault.pkcs11_root import Pkcs11Root

    label = Pkcs11Root.create_from_env(hsm).label
    with pytest.raises(RootKeyError, match="not found in PKCS#11 token 'kg-b'"):
        Pkcs11Root.from_env({**hsm, "KEYGUARD_PKCS11_TOKEN": "kg-b"}, label=label)


def test_tampered_or_truncated_wrapping_is_refused(hsm: dict[str, str]) -> None:
    from keyguard.vault.pkcs11_root import Pkcs11Root

    root = Pkcs11Root.create_from_env(hsm)
    wrapped = bytearray(root.wrap(b"x" * 32))
    wrapped[-1] ^= 1
    with pytest.raises(RootKeyError):
        root.unwrap(bytes(wrapped))
    with pytest.raises(RootKeyError, match="truncated"):
        root.unwrap(bytes(wrapped[:20]))


def test_missing_configuration_and_module(hsm: dict[str, str]) -> None:
    from keyguard.vault.pkcs11_root import Pkcs11Root

    with pytest.raises(RootKeyError, match="not configured") as info:
        Pkcs11Root.from_env({}, label="keyguard-root")
    assert "KEYGUARD_PKCS11_PIN" in info.value.hint
    with pytest.raises(RootKeyError, match="module /nonexistent.so not found"):
        Pkcs11Root.from_env({**hsm, "KEYGUARD_PKCS11_MODULE": "/nonexistent.so"}, label="x")


def test_vault_on_a_pkcs11_root(hsm: dict[str, str], tmp_path: Path) -> None:
    """The vault reopens from the stored parameters, and not with another token."""
    from keyguard.store.db import create_db_engine, migrate
    from keyguard.vault.principal import local_admin
    from keyguard.vault.roots import create_root
    from keyguard.vault.service import Vault

    engine = create_db_engine(f"sqlite:///{tmp_path / 'kg.db'}")
    migrate(engine)
    root = create_root("pkcs11", tmp_path, hsm)
    vault = Vault.initialize(engine, root)
    admin = local_admin()
    vault.create_key(admin, "pay", "encrypt", tier="high")
    ciphertext, _ = vault.encrypt(admin, "pay", b"card 4111")

    os.environ.update(hsm)
    try:
        reopened = Vault.open(engine)
        assert reopened.decrypt(admin, ciphertext)[0] == b"card 4111"
        os.environ["KEYGUARD_PKCS11_TOKEN"] = "kg-b"
        with pytest.raises(RootKeyError):
            Vault.open(engine)
    finally:
        for name in hsm:
            os.environ.pop(name, None)
    engine.dispose()
