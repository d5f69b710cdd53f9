"""The pipeline: prefilter engines, overlap resolution, inline allow, huge lines, streams,
base64 layers, allowlists."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable

import pytest

from keyguard.scan.catalog import load_rules
from keyguard.scan.config import parse_config
from keyguard.scan.engine import CHUNK, Scanner
from keyguard.scan.model import Origin

from .conftest import scan_text

GH = "{crc:ghp}"
AWS = "AKIA{gen:[A-Z2-7]*16}"


def test_hyperscan_and_aho_corasick_agree(gen: Callable[[str], str]) -> None:
    rules = load_rules()
    text = "\n".join(
        gen(t)
        for t in [f"token = {GH}", f"key={AWS}", "password: {gen:[a-z]*6}7#{gen:[A-Z]*4}92!", "{pem:PRIVATE KEY}"]
    ).encode()
    a = Scanner(rules, engine="hyperscan").scan_bytes(text, Origin("a"))
    b = Scanner(rules, engine="ahocorasick").scan_bytes(text, Origin("a"))
    assert [(f.rule, f.line, f.column) for f in a] == [(f.rule, f.line, f.column) for f in b]
    assert {f.rule for f in a} >= {"github-pat", "aws-access-key-id", "private-key-pkcs8"}


def test_line_and_column(scanner: Scanner, gen: Callable[[str], str]) -> None:
    token = gen(GH)
    findings = scan_text(scanner, f"a\nb\n  x = '{token}'\n")
    assert [(f.rule, f.line, f.column) for f in findings] == [("github-pat", 3, 8)]
    assert findings[0].secret == token


def test_specific_rule_beats_generic(scanner: Scanner, gen: Callable[[str], str]) -> None:
    findings = scan_text(scanner, gen(f"GITHUB_TOKEN = '{GH}'\napi_key = '{GH}'"))
    assert [f.rule for f in findings] == ["github-pat", "github-pat"]


def test_inline_allow(scanner: Scanner, gen: Callable[[str], str]) -> None:
    text = gen(f"t = '{GH}'  # keyguard:allow\nu = '{GH}'\n")
    assert [f.line for f in scan_text(scanner, text)] == [2]


def test_huge_single_line(scanner: Scanner, gen: Callable[[str], str]) -> None:
    token = gen(GH)
    line = ("var a=1;" * 400_000) + f'var t="{token}";' + ("b=2;" * 400_000)
    findings = scan_text(scanner, line, "app.min.js")
    assert [(f.rule, f.line) for f in findings] == [("github-pat", 1)]
    assert findings[0].column == len("var a=1;") * 400_000 + len('var t="') + 1


def test_stream_across_chunks_reports_once(scanner: Scanner, gen: Callable[[str], str]) -> None:
    filler = b"# nothing to see here\n" * (CHUNK // 22 + 10)
    token = gen(GH)
    data = filler + f"t = '{token}'\n".encode() + filler
    findings = list(scanner.scan_stream(io.BytesIO(data), Origin("big.txt")))
    assert [(f.rule, f.line) for f in findings] == [("github-pat", filler.count(b"\n") + 1)]


def test_kubernetes_secret_is_decoded(scanner: Scanner, gen: Callable[[str], str]) -> None:
    inner = gen(GH)
    value = base64.b64encode(f"token={inner}".encode()).decode()
    manifest = f"apiVersion: v1\nkind: Secret\ndata:\n  config: {value}\n"
    findings = scan_text(scanner, manifest, "secret.yaml")
    assert [(f.rule, f.line, f.secret) for f in findings] == [("github-pat", 4, inner)]
    assert findings[0].extra["decoded_depth"] == 1


def test_double_base64_layer(scanner: Scanner, gen: Callable[[str], str]) -> None:
    inner = gen(GH)
    once = base64.b64encode(f"GITHUB_TOKEN={inner}".encode()).decode()
    twice = base64.b64encode(f"payload: base64 {once}".encode()).decode()
    findings = scan_text(scanner, f"blob = base64 {twice}\n")
    assert [f.secret for f in findings] == [inner]


def test_decode_depth_limit(gen: Callable[[str], str]) -> None:
    inner = gen(GH)
    once = base64.b64encode(f"GITHUB_TOKEN={inner}".encode()).decode()
    text = f"blob = base64 {once}\n".encode()
    assert Scanner(load_rules(), max_decode_depth=0).scan_bytes(text, Origin("x")) == []
    assert len(Scanner(load_rules(), max_decode_depth=1).scan_bytes(text, Origin("x"))) == 1


@pytest.mark.parametrize(
    "text",
    [
        "password = os.environ['DB_PASSWORD']",
        "api_key: ${API_KEY}",
        "token = '{{ vault_token }}'",
        "id = 3f2504e0-4f89-11d3-9a0c-0305e82c3301",
        "checksum = e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "AKIAIOSFODNN7EXAMPLE",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 user@host",
        "password: changeme",
        'secret_key_base = "<%= ENV["SECRET_KEY_BASE"] %>"',
        "    password: _PasswordType | None = None,",
        "def load(private_key: x25519.X25519PrivateKey) -> None:",
        "splitpasswd = urllib.parse._splitpasswd",
        "token = context.perl6_token_nesting_level",
        "url = 'https://user:a%20secret@example.org/'",
    ],
)
def test_hard_negatives(scanner: Scanner, text: str) -> None:
    assert scan_text(scanner, text) == []


def test_config_allowlists(gen: Callable[[str], str]) -> None:
    token = gen(GH)
    config = parse_config(
        {
            "allowlist": {"paths": [r"^fixtures/"], "stopwords": ["notreal"]},
            "rules": {
                "github-pat": {"regexes": [token[:12]]},
                "aws-access-key-id": {"paths": [r"\.md$"]},
            },
        }
    )
    scanner = Scanner(load_rules(), config=config)
    aws = gen(AWS)
    assert scanner.scan_bytes(f"t={token}".encode(), Origin("src/a.py")) == []
    assert scanner.scan_bytes(f"k={aws}".encode(), Origin("fixtures/a.py")) == []
    assert scanner.scan_bytes(f"k={aws}".encode(), Origin("README.md")) == []
    assert len(scanner.scan_bytes(f"k={aws}".encode(), Origin("src/a.py"))) == 1


def test_rule_level_stopwords() -> None:
    rules = load_rules()
    scanner = Scanner(rules)
    assert scan_text(scanner, "DB_PASSWORD=Sample9xQ2!") == []


def test_load_config_file(tmp_path: object) -> None:
    from pathlib import Path

    from keyguard.errors import DataFileError
    from keyguard.scan.config import load_config

    assert isinstance(tmp_path, Path)
    (tmp_path / ".keyguard.toml").write_text("[scan]\ndisabled_rules = ['jwt']\n")
    (tmp_path / "sub").mkdir()
    assert load_config(None, tmp_path / "sub").disabled_rules == frozenset({"jwt"})
    (tmp_path / "bad.toml").write_text("[scan\n")
    with pytest.raises(DataFileError):
        load_config(tmp_path / "bad.toml")


def test_documented_example_values_are_not_findings(scanner: Scanner) -> None:
    # the documented Stripe test key, assembled so this file holds no literal
    value = "sk_test_" + "4eC39HqLyjWDarjtT1zdp7dc"
    assert scan_text(scanner, f"stripe.api_key = '{value}'") == []


def test_a_window_seen_before_is_not_verified_again(gen: Callable[[str], str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The next version of a file repeats most of its lines: a window already verified
    reuses its accepted matches, placed at the new offset, and the inline allow marker is
    still looked for on the whole line (here beyond the window of a very long line)."""
    scanner = Scanner(load_rules())
    verified: list[bytes] = []
    verify = scanner._verify
    monkeypatch.setattr(scanner, "_verify", lambda chunk, rule: verified.append(chunk) or verify(chunk, rule))
    line = gen(f"TOKEN = '{GH}'") + " " * 3000
    first = scan_text(scanner, f"a = 1\n{line}\n")
    again = scan_text(scanner, f"b = 2\nc = 3\n\n{line}\n")
    allowed = scan_text(scanner, f"{line}# keyguard:allow\n")
    assert [(f.line, f.column) for f in first] == [(2, 10)]
    assert [(f.line, f.column, f.secret) for f in again] == [(4, 10, first[0].secret)]
    assert allowed == []
    assert len(verified) == len(set(verified))  # each distinct window verified once
