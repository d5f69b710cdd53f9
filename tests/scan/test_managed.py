"""Recognising keyguard's own keys (fake index implementing the Protocol) and opening
incidents for them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keyguard.response.leaks import open_incidents_for
from keyguard.scan.catalog import load_rules
from keyguard.scan.engine import Scanner
from keyguard.scan.managed import (
    MANAGED_RULE,
    ManagedKeyIndex,
    ManagedKeyRef,
    ManagedMatcher,
)
from keyguard.scan.model import Origin
from keyguard.scan.run import scan_history

from .conftest import commit

_PEPPER = secrets.token_bytes(32)


class FakeIndex:
    """Stores only fingerprints: SPKI SHA-256 and HMAC of raw secrets."""

    def __init__(self) -> None:
        self.public: dict[str, ManagedKeyRef] = {}
        self.raw: dict[str, ManagedKeyRef] = {}

    def add_private(self, key: object, ref: ManagedKeyRef) -> None:
        spki = key.public_key().public_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public[hashlib.sha256(spki).hexdigest()] = ref

    def add_secret(self, raw: bytes, ref: ManagedKeyRef) -> None:
        self.raw[hmac.new(_PEPPER, raw, "sha256").hexdigest()] = ref

    def match_secret(self, raw: bytes) -> ManagedKeyRef | None:
        return self.raw.get(hmac.new(_PEPPER, raw, "sha256").hexdigest())

    def match_public(self, spki_der: bytes) -> ManagedKeyRef | None:
        return self.public.get(hashlib.sha256(spki_der).hexdigest())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def keys(rsa_key: rsa.RSAPrivateKey) -> dict[str, object]:
    return {
        "rsa": rsa_key,
        "ec": ec.generate_private_key(ec.SECP384R1()),
        "ed": ed25519.Ed25519PrivateKey.generate(),
        "aes": secrets.token_bytes(32),
        "hmac": secrets.token_bytes(64),
        "other": ec.generate_private_key(ec.SECP256R1()),
    }


@pytest.fixture
def index(keys: dict[str, object]) -> FakeIndex:
    idx = FakeIndex()
    idx.add_private(keys["rsa"], ManagedKeyRef("payments-signing", 2))
    idx.add_private(keys["ec"], ManagedKeyRef("api-ec", 1))
    idx.add_private(keys["ed"], ManagedKeyRef("release-ed", 3))
    idx.add_secret(keys["aes"], ManagedKeyRef("payments-db-master", 3))  # type: ignore[arg-type]
    idx.add_secret(keys["hmac"], ManagedKeyRef("webhook-mac", 1))  # type: ignore[arg-type]
    return idx


def _pem(key: object, fmt: serialization.PrivateFormat) -> str:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, fmt, serialization.NoEncryption()
    ).decode()


def _der(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _scan(index: ManagedKeyIndex, text: str) -> list[tuple[str, str, int, str]]:
    scanner = Scanner(load_rules(), managed=ManagedMatcher(index))
    return [
        (f.rule, f.managed_key["name"], f.managed_key["version"], f.severity)
        for f in scanner.scan_bytes(text.encode(), Origin("leak.txt"))
        if f.managed_key
    ]


def test_protocol_is_satisfied() -> None:
    idx: ManagedKeyIndex = FakeIndex()
    assert idx.match_secret(b"x" * 32) is None


@pytest.mark.parametrize(
    ("encode", "expected"),
    [
        (
            lambda k: _pem(k["rsa"], serialization.PrivateFormat.TraditionalOpenSSL),
            ("private-key-pkcs1-rsa", "payments-signing", 2, "critical"),
        ),
        (
            lambda k: _pem(k["ec"], serialization.PrivateFormat.TraditionalOpenSSL),
            ("private-key-sec1-ec", "api-ec", 1, "critical"),
        ),
        (
            lambda k: _pem(k["ed"], serialization.PrivateFormat.PKCS8),
            ("private-key-pkcs8", "release-ed", 3, "critical"),
        ),
        (
            lambda k: _pem(k["ed"], serialization.PrivateFormat.OpenSSH),
            ("private-key-openssh", "release-ed", 3, "critical"),
        ),
        (
            lambda k: json.dumps({"key": _pem(k["ec"], serialization.PrivateFormat.PKCS8)}),
            ("private-key-pkcs8", "api-ec", 1, "critical"),
        ),
        (
            lambda k: "der_b64 = " + base64.b64encode(_der(k["ec"])).decode(),
            (MANAGED_RULE, "api-ec", 1, "critical"),
        ),
        (lambda k: "der_hex = " + _der(k["ed"]).hex(), (MANAGED_RULE, "release-ed", 3, "critical")),
        (
            lambda k: "MASTER = " + base64.b64encode(k["aes"]).decode(),
            (MANAGED_RULE, "payments-db-master", 3, "critical"),
        ),
        (
            lambda k: "master_hex: " + k["aes"].hex(),
            (MANAGED_RULE, "payments-db-master", 3, "critical"),
        ),
        (lambda k: "m=" + _b64u(k["hmac"]), (MANAGED_RULE, "webhook-mac", 1, "critical")),
    ],
)
def test_encodings_recognised(
    index: FakeIndex,
    keys: dict[str, object],
    encode: Callable[[dict[str, object]], str],
    expected: tuple[str, str, int, str],
) -> None:
    assert _scan(index, encode(keys) + "\n") == [expected]


def test_jwk_private_and_oct(index: FakeIndex, keys: dict[str, object]) -> None:
    ed = keys["ed"]
    raw_pub = ed.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64u(raw_pub), "d": "AAAA"}
    oct_jwk = {"kty": "oct", "k": _b64u(keys["aes"])}  # type: ignore[arg-type]
    numbers = keys["rsa"].private_numbers()  # type: ignore[attr-defined]
    n = numbers.public_numbers.n
    rsa_jwk = {
        "kty": "RSA",
        "e": "AQAB",
        "n": _b64u(n.to_bytes((n.bit_length() + 7) // 8, "big")),
        "d": "xx",
    }
    text = "\n".join(json.dumps(j) for j in (jwk, oct_jwk, rsa_jwk))
    names = sorted(r[1] for r in _scan(index, text))
    assert names == ["payments-db-master", "payments-signing", "release-ed"]


def test_public_key_match_is_informational(index: FakeIndex, keys: dict[str, object]) -> None:
    pub = (
        keys["ec"]
        .public_key()
        .public_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        .decode()
    )
    assert _scan(index, pub) == [("keyguard-managed-public-key", "api-ec", 1, "info")]


def test_unmanaged_material_is_not_marked(index: FakeIndex, keys: dict[str, object]) -> None:
    text = _pem(keys["other"], serialization.PrivateFormat.PKCS8)
    text += "\nraw = " + base64.b64encode(secrets.token_bytes(32)).decode()
    assert _scan(index, text) == []


def test_no_key_material_in_finding_record(index: FakeIndex, keys: dict[str, object]) -> None:
    scanner = Scanner(load_rules(), managed=ManagedMatcher(index))
    material = base64.b64encode(keys["aes"]).decode()  # type: ignore[arg-type]
    finding = scanner.scan_bytes(f"K={material}".encode(), Origin("x"))[0]
    record = json.dumps(finding.to_record())
    assert material not in record and material[4:] not in record


def test_old_commit_leak_opens_incident(repo: Path, index: FakeIndex, keys: dict[str, object]) -> None:
    material = base64.b64encode(keys["aes"]).decode()  # type: ignore[arg-type]
    (repo / "settings.py").write_text(f"MASTER_KEY = '{material}'\n")
    leak = commit(repo, "add settings", "2023-05-04T08:30:00+00:00", "Mallory Dev")
    (repo / "settings.py").write_text("MASTER_KEY = os.environ['MASTER_KEY']\n")
    commit(repo, "use env", "2023-06-01T08:30:00+00:00")
    scanner = Scanner(load_rules(), managed=ManagedMatcher(index))
    findings = scan_history(scanner, str(repo), jobs=1)
    calls: list[tuple[object, ...]] = []

    def opener(
        ref: ManagedKeyRef,
        exposed_at: datetime,
        author: str,
        commit_sha: str,
        root_cause: str,
        location: str,
    ) -> str:
        calls.append((ref, exposed_at.isoformat(), author, commit_sha, root_cause, location))
        return "INC-1"

    opened = open_incidents_for(findings, opener)
    assert opened == {ManagedKeyRef("payments-db-master", 3): "INC-1"}
    assert calls == [
        (
            ManagedKeyRef("payments-db-master", 3),
            "2023-05-04T08:30:00+00:00",
            "Mallory Dev <mallory@corp.test>",
            leak,
            "committed to version control",
            "settings.py:1",
        )
    ]


def test_token_boundaries(index: FakeIndex, keys: dict[str, object]) -> None:
    material = keys["aes"].hex()  # type: ignore[attr-defined]
    assert _scan(index, f"x = {material}g\n") == []  # part of a longer word: not a key
    assert _scan(index, f"x = {material}") == [(MANAGED_RULE, "payments-db-master", 3, "critical")]
    encoded = base64.b64encode(keys["aes"]).decode()  # type: ignore[arg-type]
    assert _scan(index, f"{encoded}Q") == []
    assert len(_scan(index, f"[{encoded}]")) == 1
