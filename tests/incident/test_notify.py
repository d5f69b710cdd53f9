"""Notification drafts: every regulation's required content is filled, in en and zh."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from keyguard.incident.model import Incident, IncidentKey, Severity, Status
from keyguard.incident.notify import FILLS, draft_notice
from keyguard.incident.obligations import Facts, default_catalog
from keyguard.incident.playbook import load_playbook, schedule

CATALOG = default_catalog()
DETECTED = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _incident() -> Incident:
    incident = Incident(
        id=3,
        title="Leaked customer key",
        keys=[IncidentKey("customers", 2)],
        exposed_at=datetime(2026, 11, 27, 7, 0, tzinfo=UTC),
        detected_at=DETECTED,
        status=Status.CONTAINED,
        severity=Severity.HIGH,
        source="public gist",
        playbook="leaked-key",
        jurisdictions=["eu", "cn", "us-ca"],
        data_classes=["pii", "credentials"],
        flags=["high-risk"],
        impact={"records": 12000},
        phases=schedule(load_playbook(), DETECTED),
    )
    incident.phases[0].tasks[0].done_at = DETECTED
    incident.obligations = CATALOG.obligations(Facts.of(incident))
    return incident


def test_every_fill_is_known() -> None:
    used = {c.fill for spec in CATALOG.specs.values() for c in spec.content}
    assert used <= set(FILLS), used - set(FILLS)


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("regulation", sorted(CATALOG.specs))
def test_draft_has_every_required_field(regulation: str, lang: str) -> None:
    spec = CATALOG.get(regulation)
    text = draft_notice(_incident(), spec, lang, now=DETECTED, contact="dpo@acme.example")
    for field in spec.content:
        assert (field.label.zh if lang == "zh" else field.label.en) in text
    assert spec.source.url in text
    assert "{" not in text.replace("{{", "")  # no unformatted placeholders


def test_draft_fills_facts_and_marks_gaps() -> None:
    incident = _incident()
    en = draft_notice(incident, CATALOG.get("gdpr-art33"), "en", now=DETECTED)
    assert "customers@2" in en and "12,000 records" in en and "2026-11-30T09:00:00Z" in en
    assert "[to be completed: contact point]" in en
    zh = draft_notice(incident, CATALOG.get("cn-pipl-art57"), "zh", now=DETECTED, contact="张三")
    assert "个人身份信息、账户凭证" in zh and "张三" in zh and "【待补充：原因分析】" in zh


def test_draft_warns_when_the_regulation_does_not_apply() -> None:
    text = draft_notice(_incident(), CATALOG.get("hipaa-breach"), "en", now=DETECTED)
    assert "does not apply" in text


def test_zh_draft_translates_a_traced_source() -> None:
    incident = _incident()
    incident.source = "committed to version control: billing/.env:1 in commit feb48561a1b5 by dev <dev@example.com>"
    zh = draft_notice(incident, CATALOG.get("cn-dsl-art29"), "zh", now=DETECTED)
    assert "提交到版本库" in zh and "committed to version control" not in zh
    assert "billing/.env:1" in zh and "feb48561a1b5" in zh
    en = draft_notice(incident, CATALOG.get("gdpr-art33"), "en", now=DETECTED)
    assert "committed to version control: billing/.env:1" in en
