"""Reports from plain data: Markdown, HTML with the embedded chart, PDF with CJK text."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from keyguard.errors import UsageError
from keyguard.incident.model import Incident, IncidentKey, Severity, Status, TimelineEntry
from keyguard.incident.obligations import Facts, default_catalog
from keyguard.incident.playbook import load_playbook, schedule
from keyguard.incident.report import Anomaly, DataItem, ReportData, UsagePoint, render_report
from keyguard.incident.report.chart import usage_chart_png

DETECTED = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
EXPOSED = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
CONTAINED = DETECTED + timedelta(minutes=2)
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _report_data() -> ReportData:
    incident = Incident(
        id=7,
        title="Leaked payments key",
        keys=[IncidentKey("pay", 1)],
        exposed_at=EXPOSED,
        detected_at=DETECTED,
        status=Status.CONTAINED,
        severity=Severity.HIGH,
        source="github.com/acme/app commit 1a2b3c",
        playbook="leaked-key",
        jurisdictions=["eu", "cn"],
        data_classes=["pii", "payment"],
        flags=["relatively-major"],
        status_history={"open": DETECTED, "contained": CONTAINED},
        phases=schedule(load_playbook(), DETECTED),
        root_cause="",
    )
    incident.phases[0].tasks[0].done_at = CONTAINED
    incident.phases[0].tasks[0].done_by = "keyguard"
    incident.obligations = default_catalog().obligations(Facts.of(incident))
    incident.timeline = [
        TimelineEntry(DETECTED, "detected", "scanner", "leak detected"),
        TimelineEntry(CONTAINED, "status", "keyguard", "status → contained"),
    ]
    start = EXPOSED - timedelta(hours=12)
    usage = [
        UsagePoint(start + timedelta(hours=h), 40 + (300 if 5 <= h - 12 <= 6 else 0), 2 if h > 18 else 0)
        for h in range(30)
    ]
    anomalies = [
        Anomaly(
            EXPOSED + timedelta(hours=5, minutes=12),
            "new-source-ip",
            "203.0.113.9 never seen",
            "high",
        ),
        Anomaly(
            EXPOSED + timedelta(hours=5, minutes=30),
            "burst",
            "340 decrypts/min vs 2 baseline",
            "high",
        ),
    ]
    items = [
        DataItem("customers.db", "pii", 120_000, "pay", 1),
        DataItem("cards.vault", "payment", 8_000, "pay", 1, rewrapped=True),
        DataItem("backup.tar", "pii", 5_000, "pay", 1),
    ]
    return ReportData(incident, NOW, usage, anomalies, items, organisation="Acme")


def test_markdown_report_has_every_section() -> None:
    md = render_report(_report_data(), "md", "en").decode()
    for heading in (
        "## Summary",
        "## Timeline against the SLA",
        "## Impact",
        "### Use of the key over time",
        "### Anomalies",
        "## Regulatory obligations",
        "## Root cause",
        "## Actions still open",
        "## Hardening recommendations",
    ):
        assert heading in md
    assert "| Time to contain (from detection) | 2m 00s |" in md
    assert "| personal identification data | 2 | 125,000 |" in md
    assert "203.0.113.9 never seen" in md
    assert "- [ ] **verify-dead**" in md
    assert "cn-pipl-art57" in md and "**overdue**" in md
    assert "Not yet established." in md


def test_markdown_report_in_chinese() -> None:
    md = render_report(_report_data(), "md", "zh").decode()
    assert "## 概要" in md and "## 加固建议" in md and "| 遏制用时（自发现起） | 2 分 00 秒 |" in md
    assert "个人身份信息" in md and "风险等级" in md


def test_html_embeds_the_chart_as_png() -> None:
    html = render_report(_report_data(), "html", "en").decode()
    match = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert match is not None
    assert base64.b64decode(match.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
    assert "<h2>Hardening recommendations</h2>" in html


def test_html_escapes_incident_text() -> None:
    data = _report_data()
    data.incident.title = "<script>alert(1)</script>"
    html = render_report(data, "html", "en").decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_chart_without_usage_still_renders() -> None:
    data = _report_data()
    empty = ReportData(data.incident, NOW)
    assert usage_chart_png(empty, "zh").startswith(b"\x89PNG")


def test_bad_format_or_language() -> None:
    with pytest.raises(UsageError):
        render_report(_report_data(), "docx", "en")
    with pytest.raises(UsageError):
        render_report(_report_data(), "md", "fr")


def _pdftotext(pdf: bytes) -> str:
    exe = shutil.which("pdftotext")
    if exe is None:
        pytest.skip("pdftotext (poppler-utils) not installed: see ci/apt-packages.txt")
    result = subprocess.run([exe, "-", "-"], input=pdf, capture_output=True, check=True)
    return result.stdout.decode("utf-8")


@pytest.mark.slow
def test_pdf_in_chinese_contains_cjk_text() -> None:
    pdf = render_report(_report_data(), "pdf", "zh")
    assert pdf.startswith(b"%PDF-")
    text = _pdftotext(pdf)
    assert "事件报告" in text and "加固建议" in text and "遏制" in text


@pytest.mark.slow
def test_pdf_in_english_parses() -> None:
    text = _pdftotext(render_report(_report_data(), "pdf", "en"))
    assert "Incident report #7" in text and "Hardening recommendations" in text
