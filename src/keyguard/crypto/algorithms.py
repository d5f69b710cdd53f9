"""Every algorithm of SPEC §3 behind one small interface.

``generate`` returns key material as bytes (raw secret for symmetric keys,
PKCS#8 DER for private keys); ``load`` turns material into a :class:`LoadedKey`
whose methods do the work. All primitives come from ``cryptography``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.exceptions import InvalidTag as _CryptoInvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from keyguard.errors import InvalidSignature, InvalidTag, UsageError

Purpose = Literal["encrypt", "sign", "mac"]
PURPOSES: tuple[Purpose, ...] = ("encrypt", "sign", "mac")


@dataclass(frozen=True)
class AlgorithmSpec:
    """What an algorithm is for and how strong it is."""

    name: str
    purposes: frozenset[str]
    asymmetric: bool
    security_bits: int


ALGORITHMS: dict[str, AlgorithmSpec] = {
    spec.name: spec
    for spec in (
        AlgorithmSpec("aes256-gcm", frozenset({"encrypt"}), False, 256),
        AlgorithmSpec("chacha20-poly1305", frozenset({"encrypt"}), False, 256),
        AlgorithmSpec("hmac-sha256", frozenset({"mac"}), False, 256),
        AlgorithmSpec("rsa-2048", frozenset({"encrypt", "sign"}), True, 112),
        AlgorithmSpec("rsa-3072", frozenset({"encrypt", "sign"}), True, 128),
        AlgorithmSpec("rsa-4096", frozenset({"encrypt", "sign"}), True, 152),
        AlgorithmSpec("ec-p256", frozenset({"sign"}), True, 128),
        AlgorithmSpec("ec-p384", frozenset({"sign"}), True, 192),
        AlgorithmSpec("ed25519", frozenset({"sign"}), True, 128),
    )
}
DEFAULT_ALGORITHM: dict[str, str] = {
    "encrypt": "aes256-gcm",
    "sign": "ec-p256",
    "mac": "hmac-sha256",
}
_NONCE = 12
_DEK = 32
_RSA_BITS = {"rsa-2048": 2048, "rsa-3072": 3072, "rsa-4096": 4096}
_CURVES: dict[str, ec.EllipticCurve] = {"ec-p256": ec.SECP256R1(), "ec-p384": ec.SECP384R1()}
_EC_HASH: dict[str, hashes.HashAlgorithm] = {"ec-p256": hashes.SHA256(), "ec-p384": hashes.SHA384()}
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)


def spec_of(algorithm: str) -> AlgorithmSpec:
    """The spec of ``algorithm`` or a usage error listing the known ones."""
    try:
        return ALGORITHMS[algorithm]
    except KeyError:
        raise UsageError(f"unknown algorithm {algorithm!r}", hint="one of " + ", ".join(ALGORITHMS)) from None


def check_purpose(algorithm: str, purpose: str) -> None:
    """Refuse an algorithm that cannot serve ``purpose``."""
    if purpose not in PURPOSES:
        raise UsageError(f"unknown purpose {purpose!r}", hint="one of encrypt, sign, mac")
    if purpose not in spec_of(algorithm).purposes:
        raise UsageError(
            f"algorithm {algorithm} cannot be used to {purpose}",
            hint="choose one of " + ", ".join(n for n, s in ALGORITHMS.items() if purpose in s.purposes),
        )


def generate(algorithm: str) -> bytes:
    """Fresh key material for ``algorithm``."""
    spec_of(algorithm)
    if algorithm in ("aes256-gcm", "chacha20-poly1305", "hmac-sha256"):
        return os.urandom(32)
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    if algorithm in _RSA_BITS:
        private = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[algorithm])
    elif algorithm in _CURVES:
        private = ec.generate_private_key(_CURVES[algorithm])
    else:
        private = ed25519.Ed25519PrivateKey.generate()
    return private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class LoadedKey:
    """Key material ready for use. Holds the objects ``cryptography`` needs, built once."""

    def __init__(self, algorithm: str, material: bytes) -> None:
        self.algorithm = algorithm
        self._material = material
        self._aead: AESGCM | ChaCha20Poly1305 | None = None
        self._private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | None = None
        if algorithm == "aes256-gcm":
            self._aead = AESGCM(material)
        elif algorithm == "chacha20-poly1305":
            self._aead = ChaCha20Poly1305(material)
        elif ALGORITHMS[algorithm].asymmetric:
            key = serialization.load_der_private_key(material, password=None)
            if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
                raise UsageError("unsupported private key type")
            self._private = key

    # -- encryption -----------------------------------------------------------------
    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt; the payload carries nonce and tag (and the wrapped DEK for RSA)."""
        if self._aead is not None:
            nonce = os.urandom(_NONCE)
            return nonce + self._aead.encrypt(nonce, plaintext, aad)
        if isinstance(self._private, rsa.RSAPrivateKey):
            dek = AESGCM.generate_key(bit_length=256)
            wrapped = self._private.public_key().encrypt(dek, _OAEP)
            nonce = os.urandom(_NONCE)
            body = AESGCM(dek).encrypt(nonce, plaintext, aad)
            return struct.pack(">H", len(wrapped)) + wrapped + nonce + body
        raise UsageError(f"algorithm {self.algorithm} does not encrypt")

    def decrypt(self, payload: bytes, aad: bytes) -> bytes:
        """Decrypt or raise :class:`InvalidTag` with no detail."""
        try:
            if self._aead is not None:
                if len(payload) < _NONCE + 16:
                    raise InvalidTag()
                return self._aead.decrypt(payload[:_NONCE], payload[_NONCE:], aad)
            if isinstance(self._private, rsa.RSAPrivateKey):
                if len(payload) < 2:
                    raise InvalidTag()
                (size,) = struct.unpack(">H", payload[:2])
                wrapped = payload[2 : 2 + size]
                rest = payload[2 + size :]
                if len(wrapped) != size or len(rest) < _NONCE + 16:
                    raise InvalidTag()
                dek = self._private.decrypt(wrapped, _OAEP)
                return AESGCM(dek).decrypt(rest[:_NONCE], rest[_NONCE:], aad)
        except (_CryptoInvalidTag, ValueError):
            raise InvalidTag() from None
        raise UsageError(f"algorithm {self.algorithm} does not decrypt")

    # -- signatures and MACs --------------------------------------------------------
    def sign(self, message: bytes) -> bytes:
        """Sign (RSA-PSS-SHA256, ECDSA, Ed25519) or MAC (HMAC-SHA256) ``message``."""
        if self.algorithm == "hmac-sha256":
            return hmac.new(self._material, message, hashlib.sha256).digest()
        key = self._private
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(message, _PSS, hashes.SHA256())
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(message, ec.ECDSA(_EC_HASH[self.algorithm]))
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(message)
        raise UsageError(f"algorithm {self.algorithm} does not sign")

    def verify(self, message: bytes, signature: bytes) -> None:
        """Raise :class:`InvalidSignature` unless ``signature`` is valid for ``message``."""
        if self.algorithm == "hmac-sha256":
            if not hmac.compare_digest(self.sign(message), signature):
                raise InvalidSignature()
            return
        key = self._private
        try:
            if isinstance(key, rsa.RSAPrivateKey):
                key.public_key().verify(signature, message, _PSS, hashes.SHA256())
            elif isinstance(key, ec.EllipticCurvePrivateKey):
                key.public_key().verify(signature, message, ec.ECDSA(_EC_HASH[self.algorithm]))
            elif isinstance(key, ed25519.Ed25519PrivateKey):
                key.public_key().verify(signature, message)
            else:
                raise UsageError(f"algorithm {self.algorithm} does not verify")
        except _CryptoInvalidSignature:
            raise InvalidSignature() from None

    # -- public parts ---------------------------------------------------------------
    def public_spki(self) -> bytes | None:
        """SubjectPublicKeyInfo DER of the public key, or None for secret keys."""
        if self._private is None:
            return None
        return self._private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def secret_bytes(self) -> bytes:
        """The raw secret of a symmetric key (for fingerprinting inside the vault only)."""
        return self._material


def public_fingerprint(spki_der: bytes) -> str:
    """``sha256:<hex>`` of a SubjectPublicKeyInfo DER (SPEC §3)."""
    return "sha256:" + hashlib.sha256(spki_der).hexdigest()


def secret_fingerprint(fingerprint_key: bytes, secret: bytes) -> str:
    """``hmac-sha256:<hex>`` of a secret key under a vault-internal key: reveals nothing."""
    return "hmac-sha256:" + hmac.new(fingerprint_key, secret, hashlib.sha256).hexdigest()


def new_data_key() -> bytes:
    """A fresh 256-bit data-encryption key."""
    return os.urandom(_DEK)
