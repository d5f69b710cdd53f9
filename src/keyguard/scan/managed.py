"""Recognising keyguard's own keys in scanned text, by fingerprint only.

The vault side implements :class:`ManagedKeyIndex`; the scanner derives candidates
from the text (PEM / DER in base64 or hex / JWK / raw base64, base64url or hex secret
keys), asks the index, and never stores or prints key material. The scanner knows
nothing of incidents: :mod:`keyguard.response.leaks` turns its findings into incidents,
and the command line passes the index in.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from keyguard.scan.entropy import shannon
from keyguard.scan.model import Finding, Origin

SECRET_LENGTHS = frozenset({16, 24, 32, 48, 64})
MANAGED_RULE = "keyguard-managed-key"
MANAGED_PUBLIC_RULE = "keyguard-managed-public-key"


@dataclass(frozen=True, slots=True)
class ManagedKeyRef:
    """A version of a vault key."""

    name: str
    version: int


class ManagedKeyIndex(Protocol):
    """Answers whether material belongs to a vault key version (by fingerprint)."""

    def match_secret(self, raw: bytes) -> ManagedKeyRef | None:
        """Raw secret-key bytes (AES/HMAC/ChaCha key, 16-64 bytes)."""
        ...

    def match_public(self, spki_der: bytes) -> ManagedKeyRef | None:
        """SubjectPublicKeyInfo DER of a public key."""
        ...


@dataclass(frozen=True, slots=True)
class _Hit:
    start: int
    end: int
    ref: ManagedKeyRef
    private: bool


_PEM = re.compile(
    rb"-----BEGIN ((?:[A-Z0-9]+ )*(?:PRIVATE|PUBLIC) KEY)-----"
    rb"(?:[A-Za-z0-9+/=\s:,-]|\\[nr])+?-----END \1-----"
)
_JWK = re.compile(rb"\{[^{}]{0,8192}?\"kty\"\s*:\s*\"[A-Za-z]{2,3}\"[^{}]{0,8192}?\}")
_B64 = re.compile(rb"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{22,}={0,2}(?![A-Za-z0-9+/_=-])")
_HEX = re.compile(rb"(?<![0-9A-Za-z])(?:[0-9a-fA-F]{2}){16,}(?![0-9A-Za-z])")
_MAX_DER = 16384


def _b64(token: bytes) -> bytes | None:
    padded = token.rstrip(b"=") + b"=" * (-len(token.rstrip(b"=")) % 4)
    try:
        if b"-" in token or b"_" in token:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


# encoded lengths of 16/24/32/48/64-byte keys: hex, and base64 with or without padding
_HEX_LENGTHS = frozenset(2 * n for n in SECRET_LENGTHS)
_B64_LENGTHS = frozenset(length for n in SECRET_LENGTHS for length in (4 * ((n + 2) // 3), (4 * n + 2) // 3))


_B64_TABLE = bytes(
    65 if chr(i) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-=" else 32 for i in range(256)
)
_HEX_TABLE = bytes(65 if chr(i) in "0123456789abcdefABCDEF" else 32 for i in range(256))
_B64_RUN = re.compile(rb"A" * 22 + rb"A*")  # a literal prefix: re searches it fast
_HEX_RUN = re.compile(rb"A" * 32 + rb"A*")


def _token_matches(data: bytes) -> Iterator[tuple[re.Match[bytes], bool]]:
    """Hex and base64 tokens long enough to be keys. Runs are found on a translated copy
    (one literal class: fast), then the exact token regexes run on each run only."""
    for table, run, regex, is_hex in (
        (_HEX_TABLE, _HEX_RUN, _HEX, True),
        (_B64_TABLE, _B64_RUN, _B64, False),
    ):
        for span in run.finditer(data.translate(table)):
            # one byte past the run, so the token regexes' look-aheads see the real neighbour
            for match in regex.finditer(data, span.start(), min(len(data), span.end() + 1)):
                yield match, is_hex


def _worth_decoding(token: bytes, is_hex: bool) -> bool:
    """Only lengths a raw key can have, or DER (a SEQUENCE: ``30`` hex, ``M`` base64)."""
    if is_hex:
        return len(token) in _HEX_LENGTHS or (len(token) >= 80 and token[:2] == b"30")
    return len(token) in _B64_LENGTHS or (len(token) >= 54 and token[:1] == b"M")


def _unhex(token: bytes) -> bytes | None:
    try:
        return bytes.fromhex(token.decode("ascii"))
    except ValueError:
        return None


def _spki(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    public = key.public_key() if hasattr(key, "private_bytes") else key
    data: bytes = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return data


def spki_from_pem(block: bytes) -> tuple[bytes, bool] | None:
    """``(SPKI DER, is_private)`` of an unencrypted PEM key block, else None."""
    from cryptography.hazmat.primitives import serialization

    block = block.replace(b"\\n", b"\n").replace(b"\\r", b"")
    try:
        if b"OPENSSH PRIVATE KEY" in block:
            return _spki(serialization.load_ssh_private_key(block, password=None)), True
        if b"PRIVATE KEY" in block:
            return _spki(serialization.load_pem_private_key(block, password=None)), True
        return _spki(serialization.load_pem_public_key(block)), False
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
        return None
    except Exception:  # noqa: BLE001 - cryptography raises UnsupportedAlgorithm and others
        return None


def spki_from_der(der: bytes) -> tuple[bytes, bool] | None:
    """``(SPKI DER, is_private)`` of a DER private or public key, else None."""
    from cryptography.hazmat.primitives import serialization

    if len(der) > _MAX_DER or not der.startswith(b"\x30"):
        return None
    try:
        return _spki(serialization.load_der_private_key(der, password=None)), True
    except Exception:  # noqa: BLE001, S110 - not a private key: try a public one
        pass
    try:
        return _spki(serialization.load_der_public_key(der)), False
    except Exception:  # noqa: BLE001
        return None


def _int(value: str) -> int:
    raw = _b64(value.encode())
    if raw is None:
        raise ValueError("bad base64url")
    return int.from_bytes(raw, "big")


def spki_from_jwk(jwk: dict[str, Any]) -> tuple[bytes, bool] | None:
    """``(SPKI DER, is_private)`` of an RSA / EC / OKP JWK, else None."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    kty = jwk.get("kty")
    private = "d" in jwk
    try:
        if kty == "RSA":
            key: Any = rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key()
        elif kty == "EC":
            curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
            curve = curves[jwk["crv"]]
            key = ec.EllipticCurvePublicNumbers(_int(jwk["x"]), _int(jwk["y"]), curve).public_key()
        elif kty == "OKP":
            raw = _b64(str(jwk["x"]).encode()) or b""
            cls: Any = {"Ed25519": ed25519.Ed25519PublicKey, "Ed448": ed448.Ed448PublicKey}[jwk["crv"]]
            key = cls.from_public_bytes(raw)
        else:
            return None
        return _spki(key), private
    except (KeyError, ValueError, TypeError):
        return None


class ManagedMatcher:
    """Finds vault key material in a buffer and marks or adds findings for it."""

    def __init__(self, index: ManagedKeyIndex) -> None:
        self.index = index

    def _hits(self, data: bytes) -> Iterator[_Hit]:
        covered: list[tuple[int, int]] = []
        for match in _PEM.finditer(data) if b"-----BEGIN " in data else ():
            covered.append(match.span())
            derived = spki_from_pem(match.group(0))
            if derived is not None:
                ref = self.index.match_public(derived[0])
                if ref is not None:
                    yield _Hit(match.start(), match.end(), ref, derived[1])
        for match in _JWK.finditer(data) if b'"kty"' in data else ():
            try:
                jwk = json.loads(match.group(0))
            except ValueError:
                continue
            if not isinstance(jwk, dict):
                continue
            covered.append(match.span())
            ref = None
            private = True
            if jwk.get("kty") == "oct":
                raw = _b64(str(jwk.get("k", "")).encode())
                ref = self.index.match_secret(raw) if raw else None
            else:
                derived = spki_from_jwk(jwk)
                if derived is not None:
                    ref, private = self.index.match_public(derived[0]), derived[1]
            if ref is not None:
                yield _Hit(match.start(), match.end(), ref, private)

        def inside(pos: int) -> bool:
            return any(lo <= pos < hi for lo, hi in covered)

        for match, is_hex in _token_matches(data):
            token = match.group(0)
            if not _worth_decoding(token, is_hex) or inside(match.start()):
                continue
            raw = _unhex(token) if is_hex else _b64(token)
            if raw is None:
                continue
            if len(raw) in SECRET_LENGTHS:
                ref = self.index.match_secret(raw)
                if ref is not None:
                    yield _Hit(match.start(), match.end(), ref, True)
                    continue
            if len(raw) >= 40:
                derived = spki_from_der(raw)
                if derived is not None:
                    ref = self.index.match_public(derived[0])
                    if ref is not None:
                        yield _Hit(match.start(), match.end(), ref, derived[1])

    def annotate(self, data: bytes, findings: list[Finding], origin: Origin, base_line: int = 1) -> list[Finding]:
        """Mark findings that are vault keys; add findings for matches no rule reported."""
        out = list(findings)
        for hit in self._hits(data):
            line = base_line + data.count(b"\n", 0, hit.start)
            line_start = data.rfind(b"\n", 0, hit.start) + 1
            column = len(data[line_start : hit.start].decode("utf-8", "replace")) + 1
            marked = False
            for finding in out:
                if finding.file == origin.path and finding.line == line and _overlaps(finding, column, hit):
                    _mark(finding, hit)
                    marked = True
            if not marked:
                secret = data[hit.start : hit.end].decode("utf-8", "replace")
                finding = Finding(
                    rule=MANAGED_RULE if hit.private else MANAGED_PUBLIC_RULE,
                    description="Material of a key managed by keyguard",
                    severity="critical" if hit.private else "info",
                    file=origin.path,
                    line=line,
                    column=column,
                    end_column=column + len(secret),
                    secret=secret,
                    entropy=shannon(secret),
                    tags=("keyguard",),
                    commit=origin.commit,
                    author=origin.author,
                    email=origin.email,
                    date=origin.date,
                )
                _mark(finding, hit)
                out.append(finding)
        return out


def _overlaps(finding: Finding, column: int, hit: _Hit) -> bool:
    width = hit.end - hit.start
    return finding.column < column + width and column < max(finding.end_column, finding.column + 1)


def _mark(finding: Finding, hit: _Hit) -> None:
    finding.managed_key = {"name": hit.ref.name, "version": hit.ref.version}
    if hit.private:
        finding.severity = "critical"
    else:
        finding.extra["public_only"] = True
