"""The barrier: the single point where key material is sealed before storage.

The barrier key has generations (one per root of trust). Only the newest is
wrapped by the root; during a root rotation the generations are chained to each
other (``sealed_by_next`` / ``sealed_by_prev``) so that readers holding either
root keep working while rows are re-sealed (no downtime).
"""

from __future__ import annotations

import os
import threading

from cryptography.exceptions import InvalidTag as _CryptoInvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from keyguard.errors import IntegrityError, NotFoundError
from keyguard.store.tables import RootKey
from keyguard.vault.roots import RootOfTrust, open_root

_CHAIN_AAD = b"keyguard-barrier-chain-v1"


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(sealed[:12], sealed[12:], aad)
    except (_CryptoInvalidTag, ValueError):
        raise IntegrityError(
            "sealed data does not authenticate",
            hint="the database was altered or the root is wrong",
        ) from None


class Barrier:
    """Holds the unsealed barrier keys of every live generation."""

    def __init__(self, keys: dict[int, bytes]) -> None:
        self._keys = dict(keys)
        self._aead = {gen: AESGCM(key) for gen, key in keys.items()}
        self._lock = threading.Lock()

    @property
    def generation(self) -> int:
        """The newest generation: what new seals use."""
        return max(self._keys)

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[int, bytes]:
        """Seal under the newest generation; returns ``(generation, sealed)``."""
        gen = self.generation
        nonce = os.urandom(12)
        return gen, nonce + self._aead[gen].encrypt(nonce, plaintext, aad)

    def unseal(self, generation: int, sealed: bytes, aad: bytes) -> bytes:
        """Open a sealed blob of any live generation."""
        aead = self._aead.get(generation)
        if aead is None:
            raise IntegrityError(f"barrier generation {generation} is unknown", hint="reopen the vault")
        try:
            return aead.decrypt(sealed[:12], sealed[12:], aad)
        except (_CryptoInvalidTag, ValueError):
            raise IntegrityError("sealed key material does not authenticate", hint="the database was altered") from None

    def unseal_any(self, sealed: bytes, aad: bytes) -> bytes:
        """Open a blob whose generation is not recorded: try the live generations, newest first."""
        for gen in sorted(self._keys, reverse=True):
            try:
                return self.unseal(gen, sealed, aad)
            except IntegrityError:
                continue
        raise IntegrityError("sealed data opens under no live barrier generation", hint="the database was altered")

    def has(self, generation: int) -> bool:
        """True when ``generation`` is held."""
        return generation in self._keys

    def key(self, generation: int) -> bytes:
        """The raw barrier key of ``generation`` (for chaining during root rotation only)."""
        return self._keys[generation]

    def add(self, generation: int, key: bytes) -> None:
        """Learn a generation (a rotation happened elsewhere)."""
        with self._lock:
            self._keys[generation] = key
            self._aead[generation] = AESGCM(key)

    def forget(self, generation: int) -> None:
        """Drop a retired generation."""
        with self._lock:
            self._keys.pop(generation, None)
            self._aead.pop(generation, None)


def live_generations(engine: Engine) -> list[RootKey]:
    """Generations not yet retired, newest first."""
    with Session(engine, expire_on_commit=False) as session:
        return list(
            session.scalars(
                select(RootKey).where(RootKey.retired_at.is_(None)).order_by(RootKey.generation.desc())
            ).all()
        )


def open_barrier(engine: Engine, root: RootOfTrust | None = None) -> Barrier:
    """Unwrap the newest generation with the root, then walk the chain to older live ones."""
    gens = live_generations(engine)
    if not gens:
        raise NotFoundError("the vault is not initialised", hint="run keyguard init")
    newest = gens[0]
    if root is None:
        root = open_root(newest.root_kind, newest.root_params)
    if newest.wrapped_key is None:
        raise IntegrityError("the newest root generation has no wrapped key")
    keys = {newest.generation: root.unwrap(newest.wrapped_key)}
    for older in gens[1:]:
        if older.sealed_by_next is None:
            continue
        next_key = keys.get(older.generation + 1)
        if next_key is not None:
            keys[older.generation] = _open(next_key, older.sealed_by_next, _CHAIN_AAD)
    return Barrier(keys)


def chain_seal(key: bytes, other: bytes) -> bytes:
    """Seal one generation's key under another's (root rotation)."""
    return _seal(key, other, _CHAIN_AAD)


def chain_open(key: bytes, sealed: bytes) -> bytes:
    """Open a chained generation key."""
    return _open(key, sealed, _CHAIN_AAD)
