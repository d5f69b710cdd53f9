"""SCRAM-SHA-256 verifiers as PostgreSQL stores them (RFC 5802, RFC 7677), with the stdlib only.

``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` (base64). Checking a
password against a verifier needs no login: SaltedPassword = PBKDF2-HMAC-SHA-256(
password, salt, i); StoredKey = SHA-256(HMAC(SaltedPassword, "Client Key")).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stringprep
import unicodedata

PREFIX = "SCRAM-SHA-256$"
ITERATIONS = 4096  # PostgreSQL's scram_iterations default


def saslprep(password: str) -> bytes:
    """The password as PostgreSQL hashes it: SASLprep (RFC 4013) when valid, else the raw UTF-8 bytes."""
    if password.isascii():
        return password.encode()
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch for ch in password if not stringprep.in_table_b1(ch)
    )
    normal = unicodedata.normalize("NFKC", mapped)
    prohibited = (stringprep.in_table_c12, stringprep.in_table_c21_c22, stringprep.in_table_c3,
                  stringprep.in_table_c4, stringprep.in_table_c5, stringprep.in_table_c6, stringprep.in_table_c7,
                  stringprep.in_table_c8, stringprep.in_table_c9, stringprep.in_table_a1)
    if not normal or any(test(ch) for ch in normal for test in prohibited):
        return password.encode()
    return normal.encode()


def _keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password), salt, iterations)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server = hmac.new(salted, b"Server Key", "sha256").digest()
    return stored, server


def make_verifier(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """A verifier for ``ALTER ROLE … PASSWORD '…'``, so the plain password never reaches the server."""
    salt = salt if salt is not None else os.urandom(16)
    stored, server = _keys(password, salt, iterations)
    b64 = base64.b64encode
    return f"{PREFIX}{iterations}:{b64(salt).decode()}${b64(stored).decode()}:{b64(server).decode()}"


def matches(password: str, verifier: str) -> bool:
    """True when ``password`` is the one ``verifier`` was made from (constant-time compare)."""
    if not verifier.startswith(PREFIX):
        return False
    try:
        head, keys = verifier[len(PREFIX):].split("$", 1)
        iterations_text, salt_b64 = head.split(":", 1)
        stored_b64, server_b64 = keys.split(":", 1)
        iterations = int(iterations_text)
        salt, want_stored, want_server = (base64.b64decode(x) for x in (salt_b64, stored_b64, server_b64))
    except ValueError:
        return False
    if not 1 <= iterations <= 10_000_000:
        return False
    stored, server = _keys(password, salt, iterations)
    return hmac.compare_digest(stored, want_stored) and hmac.compare_digest(server, want_server)


def md5_matches(password: str, role: str, verifier: str) -> bool:
    """PostgreSQL's legacy ``md5`` verifier: ``md5`` + md5(password + role name)."""
    if not verifier.startswith("md5") or len(verifier) != 35:
        return False
    digest = hashlib.md5((password + role).encode(), usedforsecurity=False).hexdigest()
    return hmac.compare_digest("md5" + digest, verifier)
