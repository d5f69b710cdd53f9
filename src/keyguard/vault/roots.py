"""Roots of trust (SPEC §2): what wraps the barrier key.

* ``passphrase``: Argon2id (``cryptography``) over a passphrase from
  ``KEYGUARD_PASSPHRASE`` or a prompt, the salt and cost kept beside the wrapped key;
* ``keyfile``: a 256-bit file readable by its owner only (0600);
* ``pkcs11``: an AES-256 key that never leaves an HSM (SoftHSM2 in tests).

A wrong passphrase, key file or token fails with :class:`RootKeyError` (exit 5).

Argon2id parameters below OWASP's minimum (m ≥ 19 MiB, t ≥ 2, p ≥ 1) are refused
when a passphrase root is created (exit 2). A root written earlier with weaker
ones still opens, with a warning to rotate it: its parameters cannot have been
lowered by someone with only database access (a key-encryption key derived
with other parameters would not unwrap the barrier key), and refusing would lock
the owner out of their own vault.
"""

from __future__ import annotations

import base64
import getpass
import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag as _CryptoInvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keyguard.errors import RootKeyError, UsageError

_AAD = b"keyguard-root-v1"
ROOT_KINDS = ("passphrase", "keyfile", "pkcs11")
# OWASP Password Storage Cheat Sheet, Argon2id minimum: 19 MiB of memory, 2 passes, 1 lane.
ARGON2_MIN_MEMORY_KIB = 19 * 1024
ARGON2_MIN_ITERATIONS = 2
ARGON2_MIN_LANES = 1
log = logging.getLogger("keyguard.vault")


def kdf_weaknesses(memory_kib: int, iterations: int, lanes: int) -> list[str]:
    """Why these Argon2id parameters are below the minimum (empty when they are not)."""
    found: list[str] = []
    if memory_kib < ARGON2_MIN_MEMORY_KIB:
        found.append(f"memory {memory_kib} KiB < {ARGON2_MIN_MEMORY_KIB} KiB")
    if iterations < ARGON2_MIN_ITERATIONS:
        found.append(f"iterations {iterations} < {ARGON2_MIN_ITERATIONS}")
    if lanes < ARGON2_MIN_LANES:
        found.append(f"lanes {lanes} < {ARGON2_MIN_LANES}")
    return found


class RootOfTrust(Protocol):
    """Wraps and unwraps the barrier key."""

    kind: str

    def params(self) -> dict[str, Any]:
        """Public parameters to store beside the wrapped key (salt, path, label)."""
        ...

    def wrap(self, key: bytes) -> bytes:
        """Wrap ``key``."""
        ...

    def unwrap(self, wrapped: bytes) -> bytes:
        """Unwrap, or raise :class:`RootKeyError`."""
        ...


def _gcm_wrap(kek: bytes, key: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(kek).encrypt(nonce, key, _AAD)


def _gcm_unwrap(kek: bytes, wrapped: bytes, what: str) -> bytes:
    try:
        return AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], _AAD)
    except (_CryptoInvalidTag, ValueError):
        raise RootKeyError(f"wrong {what}", hint="the root of trust does not open this vault") from None


class PassphraseRoot:
    """Argon2id-derived key-encryption key."""

    kind = "passphrase"

    def __init__(self, passphrase: str, salt: bytes, memory_kib: int, iterations: int, lanes: int) -> None:
        if not passphrase:
            raise UsageError("empty passphrase", hint="set KEYGUARD_PASSPHRASE")
        self._salt = salt
        self._memory_kib = memory_kib
        self._iterations = iterations
        self._lanes = lanes
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        self._kek = Argon2id(salt=salt, length=32, iterations=iterations, lanes=lanes, memory_cost=memory_kib).derive(
            passphrase.encode()
        )

    @classmethod
    def create(cls, passphrase: str) -> PassphraseRoot:
        """A new root with a fresh salt; cost from ``KEYGUARD_KDF_MEMORY_KIB`` or 64 MiB (at least 19 MiB)."""
        text = os.environ.get("KEYGUARD_KDF_MEMORY_KIB", "65536")
        if not text.strip().isdigit():
            raise UsageError(
                "KEYGUARD_KDF_MEMORY_KIB must be a number of KiB", hint=f"at least {ARGON2_MIN_MEMORY_KIB}"
            )
        memory, iterations, lanes = int(text), 3, 4
        weak = kdf_weaknesses(memory, iterations, lanes)
        if weak:
            raise UsageError(
                "weak Argon2id parameters for the passphrase root: " + ", ".join(weak),
                hint=f"set KEYGUARD_KDF_MEMORY_KIB to {ARGON2_MIN_MEMORY_KIB} or more (OWASP minimum)",
            )
        return cls(passphrase, os.urandom(16), memory, iterations, lanes)

    def params(self) -> dict[str, Any]:
        return {
            "kdf": "argon2id",
            "salt": base64.b64encode(self._salt).decode(),
            "memory_kib": self._memory_kib,
            "iterations": self._iterations,
            "lanes": self._lanes,
        }

    def wrap(self, key: bytes) -> bytes:
        return _gcm_wrap(self._kek, key)

    def unwrap(self, wrapped: bytes) -> bytes:
        return _gcm_unwrap(self._kek, wrapped, "passphrase")


class KeyFileRoot:
    """A 256-bit key in a file of mode 0600."""

    kind = "keyfile"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._kek = self._read(path)

    @staticmethod
    def _read(path: Path) -> bytes:
        try:
            info = path.stat()
        except FileNotFoundError:
            raise RootKeyError(f"root key file {path} not found", hint="set KEYGUARD_KEYFILE") from None
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise RootKeyError(f"root key file {path} is readable by others", hint=f"chmod 600 {path}")
        data = path.read_bytes()
        if len(data) == 32:
            return data
        text = data.strip()
        if len(text) == 64:
            try:
                return bytes.fromhex(text.decode("ascii"))
            except (ValueError, UnicodeDecodeError):
                pass
        raise RootKeyError(
            f"root key file {path} does not hold a 256-bit key",
            hint="32 raw bytes or 64 hex digits",
        )

    @classmethod
    def create(cls, path: Path) -> KeyFileRoot:
        """Write a new random key file with mode 0600 (refuses to overwrite)."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls(path)
        with os.fdopen(fd, "wb") as handle:
            handle.write(os.urandom(32))
            handle.flush()
            os.fsync(handle.fileno())
        return cls(path)

    def params(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def wrap(self, key: bytes) -> bytes:
        return _gcm_wrap(self._kek, key)

    def unwrap(self, wrapped: bytes) -> bytes:
        return _gcm_unwrap(self._kek, wrapped, "root key file")


def open_root(kind: str, params: Mapping[str, Any], env: Mapping[str, str] | None = None) -> RootOfTrust:
    """Rebuild the root of trust recorded at ``init`` from its parameters and the environment."""
    env = os.environ if env is None else env
    if kind == "passphrase":
        passphrase = env.get("KEYGUARD_PASSPHRASE")
        if passphrase is None:
            passphrase = getpass.getpass("keyguard passphrase: ") if os.isatty(0) else ""
        if not passphrase:
            raise RootKeyError("no passphrase", hint="set KEYGUARD_PASSPHRASE or run on a terminal")
        memory, iterations, lanes = int(params["memory_kib"]), int(params["iterations"]), int(params["lanes"])
        weak = kdf_weaknesses(memory, iterations, lanes)
        if weak:
            log.warning(
                "the passphrase root uses weak Argon2id parameters (%s): rotate it with "
                "keyguard init --rotate-root --root passphrase",
                ", ".join(weak),
            )
        return PassphraseRoot(passphrase, base64.b64decode(params["salt"]), memory, iterations, lanes)
    if kind == "keyfile":
        return KeyFileRoot(Path(env.get("KEYGUARD_KEYFILE") or params["path"]))
    if kind == "pkcs11":
        from keyguard.vault.pkcs11_root import Pkcs11Root

        return Pkcs11Root.from_env(env, label=str(params.get("label", "keyguard-root")))
    raise UsageError(f"unknown root of trust {kind!r}", hint="one of " + ", ".join(ROOT_KINDS))


def create_root(kind: str, home: Path, env: Mapping[str, str] | None = None, *, rotating: bool = False) -> RootOfTrust:
    """Make a new root of trust of ``kind`` for ``keyguard init``.

    When ``rotating``, ``KEYGUARD_NEW_PASSPHRASE`` / ``KEYGUARD_NEW_KEYFILE`` name the
    new root (the plain variables still open the current one).
    """
    env = os.environ if env is None else env
    prefix = "KEYGUARD_NEW_" if rotating else "KEYGUARD_"
    if kind == "passphrase":
        passphrase = env.get(prefix + "PASSPHRASE")
        if passphrase is None and os.isatty(0):
            passphrase = getpass.getpass("new keyguard passphrase: ")
            if getpass.getpass("again: ") != passphrase:
                raise UsageError("passphrases differ")
        if not passphrase:
            raise UsageError("no passphrase", hint=f"set {prefix}PASSPHRASE")
        return PassphraseRoot.create(passphrase)
    if kind == "keyfile":
        default = home / (f"root-{os.urandom(4).hex()}.key" if rotating else "root.key")
        path = Path(env.get(prefix + "KEYFILE") or default)
        if rotating and path.exists():
            raise UsageError(f"{path} exists already", hint="name a new key file in KEYGUARD_NEW_KEYFILE")
        return KeyFileRoot.create(path)
    if kind == "pkcs11":
        from keyguard.vault.pkcs11_root import Pkcs11Root

        return Pkcs11Root.create_from_env(env)
    raise UsageError(f"unknown root of trust {kind!r}", hint="one of " + ", ".join(ROOT_KINDS))
