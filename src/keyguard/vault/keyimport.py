"""Bring existing keys under management: PEM, DER or JWK private keys; raw, hex or base64 secrets.

Most keys that leak predate the vault. The parser recognises the algorithm from
the key itself (RSA size, EC curve, Ed25519) and normalises private keys to
PKCS#8 DER; secret keys need a purpose to pick the algorithm.

Weak material is refused with the reason (:class:`KeyRejectedError`, exit 2 /
HTTP 422): RSA under 2048 bits or with a public exponent other than an odd one
of at least 65537 (e = 3 makes low-exponent attacks practical), curves below
P-256, and secret keys that are visibly not random (every byte the same, few
distinct bytes, or a counting or repeating pattern). These floors are fixed
here, below any policy: ``keyguard policy check`` may ask for more, never less.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keyguard.errors import KeyRejectedError, UsageError

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_B64 = re.compile(r"^[A-Za-z0-9+/_-]+={0,2}$")
MIN_RSA_BITS = 2048
MIN_RSA_EXPONENT = 65537
MIN_EC_BITS = 256


@dataclass(frozen=True)
class ParsedKey:
    """Normalised key material and the algorithm it implies."""

    algorithm: str
    material: bytes
    kind: str  # "private" or "secret"


def _b64(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    if "-" in text or "_" in text:
        return base64.urlsafe_b64decode(padded)
    return base64.b64decode(padded, validate=True)


def _from_private(key: object) -> ParsedKey:
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise KeyRejectedError(
                f"weak key: RSA-{key.key_size} is below the minimum of {MIN_RSA_BITS} bits",
                hint="generate a new key (keyguard key create --algorithm rsa-3072 or ec-p256)",
            )
        if key.key_size not in (2048, 3072, 4096):
            raise UsageError(f"RSA-{key.key_size} is not supported", hint="use 2048, 3072 or 4096 bits")
        exponent = key.public_key().public_numbers().e
        if exponent < MIN_RSA_EXPONENT or exponent % 2 == 0:
            raise KeyRejectedError(
                f"weak key: RSA public exponent {exponent} (it must be odd and at least {MIN_RSA_EXPONENT})",
                hint="generate a new key; e = 65537 is the standard",
            )
        algorithm = f"rsa-{key.key_size}"
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        curves = {"secp256r1": "ec-p256", "secp384r1": "ec-p384"}
        if key.curve.key_size < MIN_EC_BITS:
            raise KeyRejectedError(f"weak key: curve {key.curve.name} is below P-256", hint="use a P-256 or P-384 key")
        if key.curve.name not in curves:
            raise UsageError(f"curve {key.curve.name} is not supported", hint="use P-256 or P-384")
        algorithm = curves[key.curve.name]
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm = "ed25519"
    else:
        raise UsageError("unsupported private key type", hint="RSA, EC P-256/P-384 or Ed25519")
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ParsedKey(algorithm, der, "private")


def _jwk(doc: dict[str, object], purpose: str) -> ParsedKey:
    kty = doc.get("kty")
    if kty == "oct":
        return _secret(_b64(str(doc.get("k", ""))), purpose)
    if "d" not in doc:
        raise UsageError("the JWK holds no private key", hint="a public key cannot be imported")
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    text = json.dumps(doc)
    try:
        if kty == "RSA":
            return _from_private(RSAAlgorithm.from_jwk(text))
        if kty == "EC":
            return _from_private(ECAlgorithm.from_jwk(text))
        if kty == "OKP":
            return _from_private(OKPAlgorithm.from_jwk(text))
    except Exception:  # noqa: BLE001 - PyJWT raises several types for bad keys
        raise UsageError("invalid JWK", hint="check the key parameters") from None
    raise UsageError(f"unsupported JWK key type {kty!r}", hint="RSA, EC, OKP or oct")


def _secret(raw: bytes, purpose: str, algorithm: str | None = None) -> ParsedKey:
    if purpose == "sign":
        raise UsageError("a secret key cannot be a signing key", hint="use --purpose encrypt or mac")
    algorithm = algorithm or ("hmac-sha256" if purpose == "mac" else "aes256-gcm")
    if algorithm in ("aes256-gcm", "chacha20-poly1305") and len(raw) != 32:
        raise UsageError(
            f"{algorithm} needs a 256-bit key, got {len(raw) * 8} bits",
            hint="import it with --purpose mac, or supply 32 bytes",
        )
    if algorithm == "hmac-sha256" and len(raw) < 16:
        raise UsageError("an HMAC key must have at least 128 bits")
    weakness = secret_weakness(raw)
    if weakness is not None:
        raise KeyRejectedError(f"weak key: {weakness}", hint="a secret key must be random; generate a new one")
    return ParsedKey(algorithm, raw, "secret")


def secret_weakness(raw: bytes) -> str | None:
    """Why ``raw`` is visibly not a random key, or None. Never quotes the bytes.

    For 16 or more random bytes each test fails with a probability far below 2^-40.
    """
    distinct = len(set(raw))
    if distinct <= 1:
        return "every byte is the same (an all-zero or constant key)"
    if distinct < min(len(raw), 256) // 2:
        return f"only {distinct} distinct byte values in {len(raw)} bytes (low entropy)"
    steps = {(b - a) % 256 for a, b in zip(raw, raw[1:], strict=False)}
    if len(steps) < max(2, (len(raw) - 1) // 4):
        return "the bytes follow a counting or repeating pattern (low entropy)"
    return None


def parse_key(data: bytes, purpose: str, algorithm: str | None = None) -> ParsedKey:
    """Recognise ``data`` and return normalised material. Never echoes the input in errors."""
    stripped = data.strip()
    text: str | None
    try:
        text = stripped.decode("ascii")
    except UnicodeDecodeError:
        text = None
    if text is not None and "-----BEGIN" in text:
        if "ENCRYPTED" in text:
            raise UsageError(
                "the PEM key is encrypted",
                hint="decrypt it first (openssl pkey -in K -out K.plain)",
            )
        if "PUBLIC KEY" in text and "PRIVATE" not in text:
            raise UsageError("this is a public key", hint="import the private key")
        try:
            return _from_private(serialization.load_pem_private_key(stripped, password=None))
        except ValueError:
            pass
        try:
            from cryptography.hazmat.primitives.serialization import load_ssh_private_key

            return _from_private(load_ssh_private_key(stripped, password=None))
        except (ValueError, UnsupportedAlgorithm):
            raise UsageError("unreadable PEM private key", hint="PKCS#1, SEC1, PKCS#8 or OpenSSH") from None
    if text is not None and text.startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            raise UsageError("invalid JSON key", hint="expected a JWK object") from None
        if not isinstance(doc, dict):
            raise UsageError("invalid JWK", hint="expected a JSON object")
        parsed = _jwk(doc, purpose)
        if parsed.kind == "secret" and algorithm:
            return _secret(parsed.material, purpose, algorithm)
        return parsed
    # DER private keys come as bytes; try them before treating input as a raw secret.
    try:
        # Binary DER as given: stripping could eat key bytes that happen to be whitespace.
        return _from_private(serialization.load_der_private_key(data, password=None))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        pass
    if text is not None:
        compact = "".join(text.split())
        raw: bytes | None = None
        if _HEX.match(compact) and len(compact) % 2 == 0 and len(compact) >= 32:
            raw = bytes.fromhex(compact)
        elif _B64.match(compact):
            try:
                raw = _b64(compact)
            except (binascii.Error, ValueError):
                raw = None
        if raw is not None:
            try:
                return _from_private(serialization.load_der_private_key(raw, password=None))
            except (ValueError, TypeError):
                return _secret(raw, purpose, algorithm)
    return _secret(data if text is None else stripped, purpose, algorithm)
