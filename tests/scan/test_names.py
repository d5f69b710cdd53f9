"""Secret-bearing names (the context check of the generic rules) and the precision rules of
issue 14: one credential one finding, failed checksums and documented examples silent."""

from __future__ import annotations

import base64
import random
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyguard.scan.catalog import load_rules
from keyguard.scan.engine import Scanner
from keyguard.scan.model import Origin
from keyguard.scan.names import secret_name, words
from keyguard.scan.validators import base62

SCANNER = Scanner(load_rules())


def _casings(parts: list[str]) -> list[str]:
    return [
        "_".join(parts),
        "_".join(parts).upper(),
        parts[0] + "".join(p.capitalize() for p in parts[1:]),
        "".join(p.capitalize() for p in parts),
        "-".join(parts),
        ".".join(parts),
    ]


@pytest.mark.parametrize(
    "parts",
    [["db", "password"], ["api", "key"], ["client", "secret"], ["auth", "token"], ["signing", "key"],
     ["encryption", "key"], ["master", "key"], ["private", "key", "id"], ["smtp", "pwd"], ["credentials"]],
)  # fmt: skip
def test_secret_names_in_every_casing(parts: list[str]) -> None:
    assert all(secret_name(name) for name in _casings(parts))


@pytest.mark.parametrize(
    "name",
    ["cache_key", "sortKey", "key", "public_key", "secret_name", "token_url", "password_field", "api_key_id",
     "commit_sha", "restore-keys", "monkey", "bypass", "password_hash", "MAPBOX_PUBLIC_TOKEN", "tokenType"],
)  # fmt: skip
def test_identifier_names_are_not_secret(name: str) -> None:
    assert not secret_name(name)


_WORDS = st.lists(
    st.sampled_from(["db", "api", "stripe", "password", "secret", "token", "key", "cache", "id"]),
    min_size=1,
    max_size=4,
)


@given(_WORDS)
def test_casing_never_changes_the_verdict(parts: list[str]) -> None:
    verdicts = {secret_name(name) for name in _casings(parts)}
    assert len(verdicts) == 1


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ_-.0123456789", max_size=40))
def test_words_are_lower_case_and_never_raise(name: str) -> None:
    assert all(w == w.lower() for w in words(name))
    secret_name(name)


def _scan(text: str) -> list[str]:
    return [f.rule for f in SCANNER.scan_bytes(text.encode(), Origin("x"))]


def test_service_account_file_is_one_finding() -> None:
    rng = random.Random(3)
    body = base64.b64encode(rng.randbytes(600)).decode()
    pem = "\\n".join(["-----BEGIN PRIVATE KEY-----", *[body[i : i + 64] for i in range(0, 600, 64)],
                      "-----END PRIVATE KEY-----"])  # fmt: skip
    text = (
        '{\n  "type": "service_account",\n  "project_id": "p",\n'
        f'  "private_key_id": "{rng.randbytes(20).hex()}",\n  "private_key": "{pem}\\n",\n'
        '  "client_email": "svc@p.iam.gserviceaccount.com"\n}\n'
    )
    assert _scan(text) == ["gcp-service-account-key"]


def test_token_failing_its_checksum_is_reported_by_no_rule() -> None:
    rng = random.Random(5)
    body = "".join(rng.choice("abcdefghijkLMNOPQ0123456789") for _ in range(30))
    good = base62(zlib.crc32(body.encode()), 6)
    bad = good[::-1] if good[::-1] != good else "AAAAAA"
    assert _scan(f'GITHUB_TOKEN = "ghp_{body}{good}"') == ["github-pat"]
    assert _scan(f'GITHUB_TOKEN = "ghp_{body}{bad}"') == []


@pytest.mark.parametrize(
    "text",
    [
        # jwt.io's sample token, assembled so that this file holds no token literal
        "SAMPLE = '" + ".".join(["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
                                 "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ",
                                 "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"]) + "'",
        "curl -H 'Authorization: Basic " + base64.b64encode(b"Aladdin:open sesame").decode() + "' http://localhost",
        "git clone https://$GITHUB_TOKEN:x-oauth-basic@github.com/acme/api.git",
        "aws_access_key_id = AKIA" + "IOSFODNN7EXAMPLE",
        "api_key = '5f4dcc3b5aa765d61d8327deb882cf99'",  # md5("password")
    ],
)  # fmt: skip
def test_documented_examples_are_not_findings(text: str) -> None:
    assert _scan(text) == []
