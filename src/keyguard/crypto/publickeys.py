"""Public-key encodings: PEM and JWK (RFC 7517/7518/8037) from SubjectPublicKeyInfo DER."""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int(value: int, length: int | None = None) -> str:
    size = length or max(1, (value.bit_length() + 7) // 8)
    return _b64u(value.to_bytes(size, "big"))


def to_pem(spki_der: bytes) -> bytes:
    """PEM ``PUBLIC KEY`` of a SubjectPublicKeyInfo."""
    key = serialization.load_der_public_key(spki_der)
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def to_jwk(spki_der: bytes, kid: str | None = None) -> dict[str, Any]:
    """Public JWK of a SubjectPublicKeyInfo."""
    key = serialization.load_der_public_key(spki_der)
    jwk: dict[str, Any]
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        jwk = {"kty": "RSA", "n": _int(numbers.n), "e": _int(numbers.e), "alg": "PS256"}
    elif isinstance(key, ec.EllipticCurvePublicKey):
        size = (key.curve.key_size + 7) // 8
        numbers_ec = key.public_numbers()
        crv, jalg = {"secp256r1": ("P-256", "ES256"), "secp384r1": ("P-384", "ES384")}[key.curve.name]
        jwk = {
            "kty": "EC",
            "crv": crv,
            "x": _int(numbers_ec.x, size),
            "y": _int(numbers_ec.y, size),
            "alg": jalg,
        }
    elif isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64u(raw), "alg": "EdDSA"}
    else:
        raise ValueError("unsupported public key type")
    jwk["use"] = "sig"
    if kid:
        jwk["kid"] = kid
    return jwk
