"""The regulations catalog: every file validates and its worked examples hold."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from keyguard.clock import format_time
from keyguard.errors import DataFileError
from keyguard.incident.obligations import Facts, RegulationCatalog, default_catalog

CATALOG = default_catalog()
EXAMPLES = [
    pytest.param(spec, ex, id=f"{spec.id}:{ex.name}") for spec in CATALOG.specs.values() for ex in spec.examples
]

REQUIRED = {
    "gdpr-art33",
    "gdpr-art34",
    "nis2-art23-early-warning",
    "nis2-art23-notification",
    "nis2-art23-final-report",
    "cn-incident-measures-cii",
    "cn-incident-measures",
    "cn-dsl-art29",
    "cn-pipl-art57",
    "dora-art19-initial",
    "dora-art19-intermediate",
    "dora-art19-final",
    "sec-8k-item105",
    "hipaa-breach",
    "us-ca-1798.82",
}


def test_catalog_has_every_required_regulation() -> None:
    assert REQUIRED <= set(CATALOG.specs)


@pytest.mark.parametrize(("spec", "example"), EXAMPLES)
def test_worked_example(spec, example) -> None:
    facts = Facts.from_example(example.facts)
    result = {e.spec.id: e for e in CATALOG.evaluate(facts)}[spec.id]
    assert result.applies is example.applies
    if example.applies:
        assert (format_time(result.due_at) if result.due_at else None) == example.due
    assert (result.exempt.id if result.exempt else None) == example.exempt


def test_every_source_is_a_url_and_texts_are_bilingual() -> None:
    for spec in CATALOG.specs.values():
        assert spec.source.url.startswith(("https://", "http://"))
        assert spec.title.zh and spec.deadline.zh and all(c.label.zh for c in spec.content)


def test_gdpr_encryption_exemption_void_when_key_leaked() -> None:
    base = {
        "exposed_at": datetime(2026, 11, 26, 20, tzinfo=UTC),
        "detected_at": datetime(2026, 11, 27, 9, tzinfo=UTC),
        "jurisdictions": frozenset({"eu"}),
        "data_classes": frozenset({"pii"}),
    }
    safe = Facts(**base, flags=frozenset({"high-risk", "data-encrypted"}))
    leaked = Facts(**base, flags=frozenset({"high-risk", "data-encrypted", "key-compromised"}))
    assert "gdpr-art34" not in {o.regulation for o in CATALOG.obligations(safe)}
    assert "gdpr-art34" in {o.regulation for o in CATALOG.obligations(leaked)}


def test_combined_fact_pattern_orders_obligations_by_due_time() -> None:
    facts = Facts(
        exposed_at=datetime(2026, 11, 27, 7, tzinfo=UTC),
        detected_at=datetime(2026, 11, 27, 9, tzinfo=UTC),
        jurisdictions=frozenset({"eu", "cn", "us-ca"}),
        data_classes=frozenset({"pii"}),
        flags=frozenset({"key-compromised", "data-encrypted", "cii-operator", "relatively-major"}),
    )
    got = [(o.regulation, format_time(o.due_at) if o.due_at else None) for o in CATALOG.obligations(facts)]
    assert got == [
        ("cn-incident-measures-cii", "2026-11-27T10:00:00Z"),
        ("cn-dsl-art29", "2026-11-27T13:00:00Z"),
        ("cn-incident-measures", "2026-11-27T13:00:00Z"),
        ("cn-pipl-art57", "2026-11-27T13:00:00Z"),
        ("gdpr-art33", "2026-11-30T09:00:00Z"),
        ("us-ca-1798.82", "2026-12-27T09:00:00Z"),
    ]


def test_bad_regulation_file_refuses_to_load(tmp_path: Path) -> None:
    src = (Path(__file__).parents[2] / "src/keyguard/incident/regulations/gdpr-art33.yaml").read_text()
    (tmp_path / "gdpr-art33.yaml").write_text(src.replace("within: PT72H", "within: 72 hours"))
    with pytest.raises(DataFileError, match="gdpr-art33.yaml is invalid at clock.within"):
        RegulationCatalog.load(tmp_path)


def test_file_name_must_match_id(tmp_path: Path) -> None:
    src = (Path(__file__).parents[2] / "src/keyguard/incident/regulations/gdpr-art33.yaml").read_text()
    (tmp_path / "other.yaml").write_text(src)
    with pytest.raises(DataFileError, match="name the file after its id|holds regulation"):
        RegulationCatalog.load(tmp_path)
