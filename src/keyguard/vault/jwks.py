"""The signing keys of the JWT access tokens, their rotation and the JWKS.

The newest generation in ``jwt_signing_keys`` signs; it is replaced once it is
``[auth] jwt_rotation`` old, by the scheduler of ``serve`` on its leader
(:meth:`JwtKeyring.rotate_if_due`) or by whichever node next needs to sign. The rotation
runs in the vault's audited write transaction (the audit chain's lock
serialises it on both backends) and only when the newest generation is still
the one that node saw, so two nodes that find the key due at the same moment
rotate it once; ``generation`` being the primary key is the backstop, so there
are never two active signing keys. A retired key loses its ``salt`` (and with it
its private half) at once, and its public half stays in the JWKS until every
token it can have signed has expired (the 15-minute cap plus the leeway).

Private halves are never stored: HKDF of a sealed vault secret with the row's
salt gives the Ed25519 seed or the P-256 scalar.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from sqlalchemy import exc as sa_exc
from sqlalchemy import insert, or_, select, update

from keyguard.clock import as_utc
from keyguard.crypto.publickeys import to_jwk
from keyguard.store.jwt_tables import JwtSigningKey
from keyguard.vault.jwt_config import JwtConfig
from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
ROTATOR = Principal(name="keyguard:jwt-rotation", role="admin", mfa=True)
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_RELOAD_INTERVAL = 1.0  # at most one database read per second for kids this node has not seen


@dataclass(frozen=True)
class SigningKey:
    """One generation's public half (and, while it signs, its salt)."""

    generation: int
    kid: str
    algorithm: str
    public_der: bytes
    created_at: datetime
    retired_at: datetime | None
    salt: bytes | None
    public: Any

    def published_at(self, now: datetime, config: JwtConfig) -> bool:
        """True while a token this key signed may still be valid."""
        return self.retired_at is None or now < self.retired_at + config.retention


class _Raced(Exception):  # noqa: N818 - control flow, never seen by callers
    """Another node rotated first."""


def _derive(vault: Vault, generation: int, algorithm: str, salt: bytes) -> PrivateKey:
    seed = vault.derived_key(f"jwt-signing:{generation}:{salt.hex()}")
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    scalar = int.from_bytes(seed, "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def _spki(private: PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class JwtKeyring:
    """This node's view of the signing keys: the signer, the verifiers and the JWKS."""

    def __init__(self, vault: Vault, config: JwtConfig) -> None:
        self.vault = vault
        self.config = config
        self._keys: dict[str, SigningKey] = {}
        self._newest: SigningKey | None = None
        self._signer: tuple[str, PrivateKey] | None = None
        self._loaded = False
        self._last_reload = -_RELOAD_INTERVAL
        self._generation = 0
        self._lock = threading.Lock()
        vault.state_hooks.append(self.clear)

    def clear(self) -> None:
        """Forget the cached keys (a rotation here or on another node announces a state change)."""
        with self._lock:
            self._loaded = False
            self._generation += 1

    def _reload(self) -> None:
        seen = self._generation
        now = self.vault.clock.now()
        horizon = now - self.config.retention
        with self.vault.engine.connect() as conn:
            rows = conn.execute(
                select(JwtSigningKey)
                .where(or_(JwtSigningKey.retired_at.is_(None), JwtSigningKey.retired_at > horizon))
                .order_by(JwtSigningKey.generation)
            ).all()
            newest_gen = conn.execute(
                select(JwtSigningKey.generation).order_by(JwtSigningKey.generation.desc()).limit(1)
            ).scalar_one_or_none()
        keys: dict[str, SigningKey] = {}
        newest: SigningKey | None = None
        for row in rows:
            key = SigningKey(
                generation=row.generation,
                kid=row.kid,
                algorithm=row.algorithm,
                public_der=row.public_key,
                created_at=as_utc(row.created_at),
                retired_at=as_utc(row.retired_at) if row.retired_at is not None else None,
                salt=row.salt,
                public=serialization.load_der_public_key(row.public_key),
            )
            keys[key.kid] = key
            if key.generation == newest_gen:
                newest = key
        with self._lock:
            self._keys = keys
            self._newest = newest
            if self._signer is not None and (newest is None or self._signer[0] != newest.kid):
                self._signer = None
            # a state change announced while we read: what we read may predate it, read again next time
            self._loaded = seen == self._generation
            self._last_reload = time.monotonic()

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._reload()

    # ------------------------------------------------------------------ signing
    def signer(self) -> tuple[str, str, PrivateKey]:
        """``(kid, algorithm, private key)`` of the key that signs now, rotating it first when due."""
        for _attempt in range(3):
            self._ensure_loaded()
            newest = self._newest
            now = self.vault.clock.now()
            if newest is None or newest.salt is None or newest.created_at + self.config.rotation <= now:
                self.rotate(expected=newest.generation if newest is not None else 0)
                continue
            signer = self._signer
            if signer is None or signer[0] != newest.kid:
                signer = (newest.kid, _derive(self.vault, newest.generation, newest.algorithm, newest.salt))
                self._signer = signer
            return newest.kid, newest.algorithm, signer[1]
        raise RuntimeError("the JWT signing key could not be rotated")  # pragma: no cover - needs three races

    def rotate_if_due(self) -> int | None:
        """Rotate when the signing key is ``[auth] jwt_rotation`` old; the new generation, or None.

        The scheduler's job, so that the key changes on time even when no token is issued.
        Nothing happens before the first token (no key yet) or when another node rotated first.
        """
        self._reload()  # the database, not this node's cache: another node may have rotated
        newest = self._newest
        if newest is None:
            return None
        if newest.salt is not None and newest.created_at + self.config.rotation > self.vault.clock.now():
            return None
        generation = self.rotate(expected=newest.generation)
        return generation if generation != newest.generation else None

    def rotate(self, expected: int | None = None, principal: Principal = ROTATOR) -> int:
        """Make a new generation the signer; returns the generation that signs afterwards.

        With ``expected`` (the newest generation the caller saw), nothing happens
        when another node has rotated in the meantime. Audited as ``jwt.rotate``.
        """
        now = self.vault.clock.now()
        algorithm = self.config.algorithm
        try:
            with self.vault.audited(principal, "jwt.rotate", None) as ctx, self.vault.state_tx() as conn:
                current = conn.execute(
                    select(JwtSigningKey.generation).order_by(JwtSigningKey.generation.desc()).limit(1)
                ).scalar_one_or_none()
                if expected is not None and (current or 0) != expected:
                    raise _Raced
                generation = (current or 0) + 1
                salt = os.urandom(32)
                public_der = _spki(_derive(self.vault, generation, algorithm, salt))
                kid = f"jwt-{generation}-{hashlib.sha256(public_der).hexdigest()[:12]}"
                conn.execute(
                    update(JwtSigningKey)
                    .where(JwtSigningKey.generation < generation, JwtSigningKey.retired_at.is_(None))
                    .values(retired_at=now)
                )
                conn.execute(update(JwtSigningKey).where(JwtSigningKey.salt.is_not(None)).values(salt=None))
                conn.execute(
                    insert(JwtSigningKey).values(
                        generation=generation,
                        kid=kid,
                        algorithm=algorithm,
                        public_key=public_der,
                        salt=salt,
                        created_at=now,
                    )
                )
                self.vault.bump_state(conn)  # every node reloads its keyring
                ctx["reason"] = f"JWT signing key {kid} ({algorithm}) replaces generation {current or 0}"
        except (_Raced, sa_exc.IntegrityError):
            pass  # the other node's key is the one that signs
        self._reload()
        assert self._newest is not None
        return self._newest.generation

    # ------------------------------------------------------------------ verifying
    def verification_key(self, kid: str) -> SigningKey | None:
        """The published key named ``kid``, or None (unknown, or retired long enough ago)."""
        self._ensure_loaded()
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._last_reload >= _RELOAD_INTERVAL:
            self._reload()  # another node may have rotated; a bogus kid costs one read a second at most
            key = self._keys.get(kid)
        if key is None or not key.published_at(self.vault.clock.now(), self.config):
            return None
        return key

    def public_jwks(self) -> list[dict[str, Any]]:
        """The JWKs of every published generation, newest first (``kid``, ``alg``, ``use: sig``)."""
        self._ensure_loaded()
        now = self.vault.clock.now()
        published = [k for k in self._keys.values() if k.published_at(now, self.config)]
        return [to_jwk(k.public_der, kid=k.kid) for k in sorted(published, key=lambda k: -k.generation)]
