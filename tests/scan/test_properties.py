"""Hypothesis invariants of parsing, decoding and scanning."""

from __future__ import annotations

import base64
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from keyguard.scan.catalog import load_rules
from keyguard.scan.decode import b64decode_text
from keyguard.scan.engine import Scanner
from keyguard.scan.entropy import shannon
from keyguard.scan.generate import expand
from keyguard.scan.model import Finding, Origin, redact
from keyguard.scan.sources.ignore import parse_gitignore
from keyguard.scan.validators import base62, crc32_token_ok

SCANNER = Scanner(load_rules())
text_st = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)


@given(st.text(min_size=1, max_size=200))
def test_redaction_never_reveals_more_than_a_prefix(secret: str) -> None:
    shown = redact(secret)
    assert secret not in shown or len(secret) <= 4
    assert len(shown.replace("*", "")) <= 4


@given(st.text(min_size=4, max_size=200).filter(str.isprintable))
def test_b64_text_roundtrip(text: str) -> None:
    encoded = base64.b64encode(text.encode()).rstrip(b"=")
    assert b64decode_text(encoded) == text.encode()


@given(st.binary(max_size=200))
def test_b64_decoder_never_raises(data: bytes) -> None:
    b64decode_text(data)


@given(st.text(max_size=200))
def test_entropy_bounds(text: str) -> None:
    value = shannon(text)
    assert 0.0 <= value <= max(0.0, __import__("math").log2(max(1, len(set(text))))) + 1e-9


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_base62_width_and_alphabet(number: int) -> None:
    digits = base62(number, 6)
    assert len(digits) == 6 and digits.isalnum()


@given(st.integers(min_value=0, max_value=10_000))
def test_generated_github_tokens_validate(seed: int) -> None:
    token = expand("{crc:ghp}", random.Random(seed))
    assert crc32_token_ok(token)
    corrupted = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert not crc32_token_ok(corrupted)


def _key(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.rule, f.secret) for f in findings]


@settings(max_examples=60, deadline=None)
@given(prefix=text_st, suffix=text_st, seed=st.integers(0, 1000))
def test_planted_token_found_whatever_surrounds_it(prefix: str, suffix: str, seed: int) -> None:
    token = expand("{crc:ghp}", random.Random(seed))
    text = f"{prefix}\n{token}\n{suffix}".encode()
    findings = SCANNER.scan_bytes(text, Origin("x"))
    assert ("github-pat", token) in _key(findings)
    hit = next(f for f in findings if f.secret == token)
    assert hit.line == prefix.count("\n") + prefix.count("\r") * 0 + 2 or hit.line >= 2


@settings(max_examples=60, deadline=None)
@given(data=text_st, shift=st.integers(0, 50))
def test_findings_shift_with_prepended_lines(data: str, shift: int) -> None:
    base = SCANNER.scan_bytes(data.encode(), Origin("x"))
    moved = SCANNER.scan_bytes(("\n" * shift + data).encode(), Origin("x"))
    assert [(f.rule, f.secret, f.line + shift) for f in base] == [(f.rule, f.secret, f.line) for f in moved]
    # identity is independent of position and entropy
    assert [f.fingerprint for f in base] == [f.fingerprint for f in moved]


@given(st.lists(st.from_regex(r"[a-z*?/!.]{1,12}", fullmatch=True), max_size=8))
def test_gitignore_parser_never_raises(lines: list[str]) -> None:
    parse_gitignore("\n".join(lines))


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=2000))
def test_scanner_total_on_arbitrary_bytes(data: bytes) -> None:
    SCANNER.scan_bytes(data, Origin("x"))
