from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyguard.crypto import algorithms as alg
from keyguard.crypto import envelope
from keyguard.errors import InvalidSignature, InvalidTag, UsageError

ENCRYPT = ["aes256-gcm", "chacha20-poly1305", "rsa-2048"]
SIGN = ["rsa-2048", "ec-p256", "ec-p384", "ed25519", "hmac-sha256"]


@pytest.fixture(scope="module")
def loaded() -> dict[str, alg.LoadedKey]:
    return {name: alg.LoadedKey(name, alg.generate(name)) for name in set(ENCRYPT + SIGN)}


@pytest.mark.parametrize("name", ENCRYPT)
@settings(max_examples=25, deadline=None)
@given(plaintext=st.binary(max_size=2048), aad=st.binary(max_size=64))
def test_encrypt_roundtrip(loaded: dict[str, alg.LoadedKey], name: str, plaintext: bytes, aad: bytes) -> None:
    key = loaded[name]
    assert key.decrypt(key.encrypt(plaintext, aad), aad) == plaintext


@pytest.mark.parametrize("name", ENCRYPT)
@settings(max_examples=25, deadline=None)
@given(plaintext=st.binary(min_size=1, max_size=256), data=st.data())
def test_any_flipped_byte_fails(
    loaded: dict[str, alg.LoadedKey], name: str, plaintext: bytes, data: st.DataObject
) -> None:
    key = loaded[name]
    payload = bytearray(key.encrypt(plaintext, b"aad"))
    index = data.draw(st.integers(0, len(payload) - 1))
    payload[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(InvalidTag):
        key.decrypt(bytes(payload), b"aad")


@pytest.mark.parametrize("name", ENCRYPT)
def test_wrong_aad_and_truncation_fail(loaded: dict[str, alg.LoadedKey], name: str) -> None:
    key = loaded[name]
    payload = key.encrypt(b"secret", b"a")
    with pytest.raises(InvalidTag):
        key.decrypt(payload, b"b")
    for cut in (0, 1, 5, len(payload) - 1):
        with pytest.raises(InvalidTag):
            key.decrypt(payload[:cut], b"a")


@pytest.mark.parametrize("name", SIGN)
def test_sign_verify(loaded: dict[str, alg.LoadedKey], name: str) -> None:
    key = loaded[name]
    signature = key.sign(b"message")
    key.verify(b"message", signature)
    with pytest.raises(InvalidSignature):
        key.verify(b"messagf", signature)
    with pytest.raises(InvalidSignature):
        key.verify(b"message", signature[:-1] + bytes([signature[-1] ^ 1]))


def test_purpose_checks() -> None:
    alg.check_purpose("ec-p384", "sign")
    with pytest.raises(UsageError):
        alg.check_purpose("ec-p384", "encrypt")
    with pytest.raises(UsageError):
        alg.check_purpose("aes256-gcm", "sign")
    with pytest.raises(UsageError):
        alg.spec_of("des")


def test_fingerprints() -> None:
    key = alg.LoadedKey("ec-p256", alg.generate("ec-p256"))
    spki = key.public_spki()
    assert spki is not None
    assert alg.public_fingerprint(spki).startswith("sha256:")
    fp1 = alg.secret_fingerprint(b"k" * 32, b"s" * 32)
    assert fp1.startswith("hmac-sha256:") and fp1 != alg.secret_fingerprint(b"j" * 32, b"s" * 32)


@settings(max_examples=50)
@given(
    payload=st.binary(min_size=1, max_size=100),
    version=st.integers(1, 10**6),
    name=st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True),
)
def test_envelope_roundtrip(payload: bytes, version: int, name: str) -> None:
    text = envelope.Ciphertext(name, version, payload).text()
    assert envelope.parse(text) == envelope.Ciphertext(name, version, payload)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "kg:v1:",
        "kg:v1:pay:1",
        "kg:v1:Pay:1:AAAA",
        "kg:v1:pay:0:AAAA",
        "kg:v1:pay:x:AAAA",
        "kg:v2:pay:1:AAAA",
        "kg:v1:pay:1:AAAA:extra",
    ],
)
def test_envelope_rejects_malformed(text: str) -> None:
    with pytest.raises(UsageError):
        envelope.parse(text)


@pytest.mark.parametrize(
    "body",
    ["!!!", "@@@", "AAAA+AAA", "AAAA/AAA", "AAAA AAA", "AAAAA", "AA=", "AAAA==="],
)
def test_envelope_bad_base64_is_bad_input(body: str) -> None:
    """Strict base64url: a character outside the alphabet is bad input, never a tampering."""
    with pytest.raises(UsageError, match="base64url"):
        envelope.parse(f"kg:v1:pay:1:{body}")
    with pytest.raises(UsageError):
        envelope.decode_base64url(body)
    with pytest.raises(UsageError):
        envelope.decode_base64url("AAAA\n")


def test_envelope_empty_payload_is_integrity_error() -> None:
    with pytest.raises(InvalidTag):
        envelope.parse("kg:v1:pay:1:")


@pytest.mark.parametrize("version", ["99999999999999999999", "1234567890", "\u0661", "01"])
def test_envelope_version_out_of_range_is_bad_input(version: str) -> None:
    with pytest.raises(UsageError):
        envelope.parse(f"kg:v1:pay:{version}:AAAA")


def test_context_binding() -> None:
    assert envelope.associated_data("k", 1, {"b": 1, "a": 2}) == envelope.associated_data("k", 1, {"a": 2, "b": 1})
    assert envelope.associated_data("k", 1, None) != envelope.associated_data("k", 2, None)
    with pytest.raises(UsageError):
        envelope.parse_context("[1]")
    with pytest.raises(UsageError):
        envelope.parse_context("{bad")
