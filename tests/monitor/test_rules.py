"""Every rule file's positive and negative example streams, plus load-time validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyguard.errors import DataFileError
from keyguard.monitor.detect import DetectionEngine, load_rules
from keyguard.monitor.detect.rules import Example, RuleSpec, expand_stream

RULES = load_rules()
CASES = [
    pytest.param(rule, kind, ex, id=f"{rule.id}:{kind}:{ex.name}")
    for rule in RULES
    for kind in ("positive", "negative")
    for ex in getattr(rule.examples, kind)
]


def _alerts(rule: RuleSpec, example: Example) -> int:
    engine = DetectionEngine([rule], tiers=example.tiers, compromised=example.compromised)
    updates = engine.process_many(expand_stream(example))
    return sum(1 for u in updates if u.is_new and u.rule == rule.id)


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_verify_examples_agrees(rule: RuleSpec) -> None:
    from keyguard.monitor.detect.engine import verify_examples

    assert verify_examples(rule) == []


@pytest.mark.parametrize(("rule", "kind", "example"), CASES)
def test_rule_examples(rule: RuleSpec, kind: str, example: Example) -> None:
    alerts = _alerts(rule, example)
    if kind == "negative":
        assert alerts == 0
    elif example.expect_alerts is not None:
        assert alerts == example.expect_alerts
    else:
        assert alerts >= 1


def test_catalog_covers_every_kind_and_ids_are_unique() -> None:
    assert {r.kind for r in RULES} == {
        "new_value",
        "rate_spike",
        "bad_version",
        "denied_burst",
        "off_hours",
        "two_networks",
    }
    assert len({r.id for r in RULES}) == len(RULES)


@pytest.mark.parametrize(
    "body",
    [
        "id: x\n",
        "id: bad-kind\nkind: nope\ndescription: d\nexamples: {positive: [], negative: []}\n",
        (
            "id: no-negative\nkind: denied_burst\ndescription: d\n"
            "examples: {positive: [{name: a, events: [{}]}], negative: []}\n"
        ),
        (
            "id: bad-threshold\nkind: denied_burst\ndescription: d\n"
            "thresholds: {high: {threshold: 0}}\n"
            "examples: {positive: [{name: a, events: [{}]}], negative: [{name: b, events: [{}]}]}\n"
        ),
        (
            "id: bad-tier\nkind: denied_burst\ndescription: d\nthresholds: {gold: {threshold: 3}}\n"
            "examples: {positive: [{name: a, events: [{}]}], negative: [{name: b, events: [{}]}]}\n"
        ),
        "[unbalanced\n",
    ],
)
def test_bad_rule_files_are_refused(tmp_path: Path, body: str) -> None:
    path = tmp_path / "rule.yaml"
    path.write_text(body)
    with pytest.raises(DataFileError):
        load_rules([path])


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    source = next(Path(__file__).parents[2].glob("src/keyguard/monitor/rules/denied-burst.yaml"))
    (tmp_path / "a.yaml").write_text(source.read_text())
    (tmp_path / "b.yaml").write_text(source.read_text())
    with pytest.raises(DataFileError):
        load_rules([tmp_path])
