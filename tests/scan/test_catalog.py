"""The rule catalog: every rule's own examples, ids, families and refusal to load."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from keyguard.errors import DataFileError
from keyguard.scan.catalog import load_rules, validate_examples
from keyguard.scan.engine import Scanner
from keyguard.scan.generate import expand
from keyguard.scan.model import Origin

RULES = load_rules()
SCANNER = Scanner(RULES)


def test_catalog_size_and_families() -> None:
    assert len(RULES) >= 150
    families = {r.family for r in RULES}
    for family in (
        "aws",
        "gcp",
        "azure",
        "alibaba",
        "tencent",
        "huawei",
        "github",
        "gitlab",
        "private_keys",
        "jwt",
        "urls",
        "generic",
        "payments",
        "slack",
        "ai",
    ):
        assert family in families


def test_ids_unique_and_stable_shape() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    for rule in RULES:
        assert rule.keywords, rule.id
        assert rule.true_positives and rule.false_positives, rule.id
        assert all(k == k.lower() for k in rule.keywords)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rule_examples(rule: object) -> None:
    from keyguard.scan.rule import Rule

    assert isinstance(rule, Rule)
    for seed in range(3):
        rng = random.Random(f"test:{rule.id}:{seed}")
        for template in rule.true_positives:
            text = expand(template, rng)
            found = [f for f in SCANNER.scan_bytes(text.encode(), Origin("x")) if f.rule == rule.id]
            assert len(found) == 1, f"{rule.id}: true positive not found exactly once"
        for template in rule.false_positives:
            text = expand(template, rng)
            found = [f for f in SCANNER.scan_bytes(text.encode(), Origin("x")) if f.rule == rule.id]
            assert not found, f"{rule.id}: false positive reported"


def test_repository_holds_no_key_shaped_literal() -> None:
    """The catalog's own text must not trip the scanner (examples are templates)."""
    folder = Path(__file__).parents[2] / "src" / "keyguard" / "scan" / "rules"
    for path in folder.glob("*.toml"):
        findings = SCANNER.scan_bytes(path.read_bytes(), Origin(path.name))
        assert findings == [], f"{path.name}: {[f.rule for f in findings]}"


BAD_RULE = """
[[rule]]
id = "acme-token"
description = "Acme token"
regex = '''\\b(acme_[a-z0-9]{10})\\b'''
keywords = ["acme_"]
examples.true_positives = ["acme_{gen:[A-Z]*10}"]
examples.false_positives = ["acme_<token>"]
"""

GOOD_RULE = BAD_RULE.replace("{gen:[A-Z]*10}", "{gen:[a-z0-9]*10}")


def test_catalog_with_failing_example_refuses_to_load(tmp_path: Path) -> None:
    bad = tmp_path / "acme.toml"
    bad.write_text(BAD_RULE)
    with pytest.raises(DataFileError, match="refused"):
        load_rules((bad,))
    good = tmp_path / "acme_ok.toml"
    good.write_text(GOOD_RULE)
    assert any(r.id == "acme-token" for r in load_rules((good,)))


def test_duplicate_ids_refused(tmp_path: Path) -> None:
    dup = tmp_path / "dup.toml"
    dup.write_text(GOOD_RULE.replace("acme-token", "github-pat"))
    with pytest.raises(DataFileError, match="duplicate"):
        load_rules((dup,))


@pytest.mark.parametrize(
    "text",
    [
        "[[rule]]\nid='Bad Id'\n",
        "[[rule]]\nid='x'\ndescription='d'\nregex='('\nkeywords=['x']\n",
        "not toml [",
    ],
)
def test_malformed_rule_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(DataFileError):
        load_rules((path,))


def test_validate_examples_reports_missing_examples() -> None:
    from dataclasses import replace

    rule = replace(RULES[0], false_positives=())
    failures = validate_examples([rule], [rule])
    assert failures and failures[0].kind == "missing_examples"


@pytest.mark.parametrize("engine", ["hyperscan", "ahocorasick"])
def test_examples_hold_with_either_prefilter_engine(engine: str) -> None:
    assert [str(f) for f in validate_examples(RULES, seeds=(7, 8), engine=engine)] == []


def test_prefilter_regexes_compile_in_python() -> None:
    import re

    for rule in RULES:
        if rule.prefilter:
            re.compile(rule.prefilter)


def test_validation_result_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from keyguard.scan import catalog

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    catalog._builtin.cache_clear()
    try:
        assert len(catalog.load_rules()) == len(RULES)
        assert len(list((tmp_path / "keyguard").glob("catalog-*.ok"))) == 1
    finally:
        catalog._builtin.cache_clear()


def test_parsed_tables_are_cached_and_a_bad_cache_is_reparsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from keyguard.scan import catalog

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    texts = catalog.builtin_rule_texts()
    fresh = catalog._builtin_tables(texts)
    (cached,) = (tmp_path / "keyguard").glob("catalog-*.tables")
    parsed: list[str] = []
    real = catalog.rule_tables
    monkeypatch.setattr(catalog, "rule_tables", lambda text, where: parsed.append(where) or real(text, where))
    assert catalog._builtin_tables(texts) == fresh and parsed == []  # no TOML parsed
    cached.write_bytes(b"{not json")
    assert catalog._builtin_tables(texts) == fresh and len(parsed) == len(texts)
    catalog._builtin.cache_clear()
    try:
        rules = catalog.load_rules()
        assert [(r.id, r.regex.pattern, r.keywords) for r in rules] == [
            (r.id, r.regex.pattern, r.keywords) for r in RULES
        ]
    finally:
        catalog._builtin.cache_clear()


def test_a_validated_catalog_compiles_each_regex_on_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from keyguard.scan import catalog

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    catalog._builtin.cache_clear()
    try:
        checked = catalog.load_rules()  # validated now: every regex compiled, groups recorded
        assert all(rule._compiled for rule in checked)
        catalog._builtin.cache_clear()
        lazy = catalog.load_rules()
        assert not any(rule._compiled for rule in lazy)
        assert [(r.id, r.secret_group) for r in lazy] == [(r.id, r.secret_group) for r in checked]
        assert [r.regex.pattern for r in lazy] == [r.regex.pattern for r in checked]
        assert all(rule._compiled for rule in lazy)
        (marker,) = (tmp_path / "keyguard").glob("catalog-*.ok")
        marker.write_text("[1, 2]")  # not one group per rule: checked again
        catalog._builtin.cache_clear()
        assert all(rule._compiled for rule in catalog.load_rules())
    finally:
        catalog._builtin.cache_clear()
