"""The Chinese report: every phrase from the catalog, Chinese throughout, and a PDF that embeds its font."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from keyguard.incident.i18n import catalog_path, gettext, translations
from keyguard.incident.locale import TEMPLATE, extract
from keyguard.incident.model import Incident, IncidentKey, Severity, Status, TimelineEntry
from keyguard.incident.obligations import Facts, default_catalog
from keyguard.incident.playbook import load_playbook, schedule
from keyguard.incident.report import Anomaly, DataItem, ReportData, UsagePoint, render_report
from keyguard.incident.report.fonts import BUNDLED

DETECTED = datetime(2026, 12, 3, 9, 21, 40, tzinfo=UTC)
EXPOSED = datetime(2026, 12, 2, 13, 0, tzinfo=UTC)
NOW = DETECTED + timedelta(seconds=5)


def _read(path: Path) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle)


def _ids(catalog: Catalog) -> set[tuple[str, str | None]]:
    return {(str(m.id), m.context) for m in catalog if m.id}


def test_every_phrase_of_the_code_is_in_the_template() -> None:
    in_code = _ids(extract())  # type: ignore[arg-type]
    in_template = _ids(_read(TEMPLATE))
    assert sorted(in_code - in_template) == [], "run: python -m keyguard.incident.locale"
    assert sorted(in_template - in_code) == [], "stale template: python -m keyguard.incident.locale"


def test_every_phrase_has_a_chinese_translation() -> None:
    zh = {(str(m.id), m.context): m for m in _read(catalog_path("zh")) if m.id}
    untranslated = sorted(key for key in _ids(_read(TEMPLATE)) if key not in zh or not zh[key].string or zh[key].fuzzy)
    assert untranslated == [], f"{len(untranslated)} untranslated phrase(s) in {catalog_path('zh')}"
    field = re.compile(r"\{(\w+)")
    for (msgid, _), message in zh.items():
        assert set(field.findall(msgid)) == set(field.findall(str(message.string))), msgid


def test_gettext_reads_the_catalog() -> None:
    translations.cache_clear()
    assert gettext("zh", "Incident report") == "事件报告"
    assert gettext("zh", ("incident status", "open")) == "已创建"
    assert gettext("en", "Incident report") == "Incident report"


def _demo_like_data() -> ReportData:
    """A report shaped like the demo's: the sentences the response steps store, in English."""
    incident = Incident(
        id=1,
        title="Leaked key payments-db@1",
        keys=[IncidentKey("payments-db", 1)],
        exposed_at=EXPOSED,
        detected_at=DETECTED,
        status=Status.ROTATED,
        severity=Severity.HIGH,
        source="committed to version control: apps/billing/.env:1 in commit bf877cceb1c7 by dev <dev@example.com>",
        playbook="leaked-key",
        jurisdictions=["eu", "cn"],
        data_classes=["pii", "payment"],
        status_history={"open": DETECTED, "contained": DETECTED + timedelta(seconds=3)},
        phases=schedule(load_playbook(), DETECTED),
        root_cause="",
    )
    for task in incident.tasks[:3]:
        task.done_at, task.done_by = DETECTED + timedelta(seconds=3), "cli:root@vm"
    incident.obligations = default_catalog().obligations(Facts.of(incident))
    messages = [
        ("detected", "leak detected (committed to version control: apps/billing/.env:1 in commit bf877cceb1c7)"),
        ("opened", "incident opened with playbook leaked-key; 0 obligation(s)"),
        ("task", "task compromise-key done: 1 version(s) compromised"),
        ("task", "task verify-dead done: every leaked version refuses use"),
        ("status", "status → contained"),
        ("facts", "facts updated"),
        ("task", "task assess-misuse done: risk high: 11 anomalies"),
        ("task", "task rewrap-data done: 2052 items re-wrapped"),
        ("rollout", "rollout 0.0% done"),
        ("task", "task start-regulatory-clocks done: 4 obligation(s) scheduled"),
        ("task", "task monitor-tripwire done (late): leaked versions are tripwires: any use is refused and alerts"),
        ("alert", "tripwire: checkout-web attempted decrypt with compromised payments-db v1"),
        ("trace", "leak traced to apps/billing/.env:1 in commit bf877cceb1c7"),
    ]
    incident.timeline = [
        TimelineEntry(DETECTED + timedelta(seconds=i), kind, "keyguard", message)
        for i, (kind, message) in enumerate(messages)
    ]
    at = EXPOSED + timedelta(hours=1, minutes=12)
    anomalies = [
        Anomaly(at, "new-source-ip", "payments-db: new source IP 203.0.113.66 (420 calls, 395 succeeded)", "high"),
        Anomaly(at, "new-user-agent", "payments-db: new user agent 'python-requests/2.31.0' (420 calls)", "low"),
        Anomaly(at, "refused", "payments-db: 25 denied calls (rate limited)", "medium"),
        Anomaly(at, "burst", "payments-db: 422 calls in one minute (threshold 25)", "high"),
        Anomaly(at, "new-client", "payments-db: new client unknown-client (25 calls)", "medium"),
        Anomaly(at, "refused", "payments-db: 1 denied calls (version 1 is compromised)", "medium"),
        Anomaly(at, "off-hours", "payments-db: 12 calls in a normally idle hour", "medium"),
    ]
    factors = [
        ("The key is high-tier.", "该密钥属于高级。"),
        ("It protects 13,360,000 records of sensitive data (payment, pii).", "（payment、pii）"),
        ("1 source IP(s) never seen before the exposure used the key successfully (first: 203.0.113.66).", ""),
        ("3 new client(s) and 2 new user agent(s) appeared.", ""),
        ("Use peaked at 422 calls in one minute (2026-12-02T14:12:00Z), above the baseline threshold of 25.", ""),
        ("51 calls were refused after the exposure (probing or blocked use).", ""),
    ]
    usage = [UsagePoint(EXPOSED + timedelta(hours=h), 40, 2) for h in range(6)]
    items = [DataItem("cards", "payment", 250_000, "payments-db", 1, rewrapped=True)]
    return ReportData(incident, NOW, usage, anomalies, items, risk_factors=factors)


#: Values that are data, not phrases: keys, ids, addresses, agents, actors, paths, names of laws.
_DATA = re.compile(
    r"payments-db|cards|checkout-web|unknown-client|python-requests/[\d.]+|cli:root@vm|keyguard|"
    r"dev <dev@example\.com>|apps/billing/\.env|bf877cceb1c7|leaked-key|aes256-gcm|"
    r"[a-z]+(?:-[a-z0-9]+)+|https?://\S+|GDPR|SLA|UTC|IP|TOTP|HSM|PKCS#11|CI|pre-commit"
)


def test_the_chinese_report_is_chinese_throughout() -> None:
    md = render_report(_demo_like_data(), "md", "zh").decode()
    words = sorted(set(re.findall(r"[A-Za-z]{2,}", _DATA.sub(" ", md))))
    assert words == [], f"English left in the zh report: {words}"


def test_english_report_is_unchanged_by_the_catalog() -> None:
    md = render_report(_demo_like_data(), "md", "en").decode()
    assert "task compromise-key done: 1 version(s) compromised" in md
    assert "| Time to contain (from detection) | 3.00 s |" in md
    assert "It protects 13,360,000 records of sensitive data (payment, pii)." in md


def test_chinese_report_translates_the_stored_sentences() -> None:
    md = render_report(_demo_like_data(), "md", "zh").decode()
    assert "任务 compromise-key 已完成：1 个版本已标记为泄露" in md
    assert "该密钥保护 13,360,000 条敏感数据记录（支付信息、个人身份信息）。" in md
    assert "payments-db：新来源 IP 203.0.113.66（420 次调用，395 次成功）" in md
    assert md.startswith("# 事件报告 #1: 密钥泄露：payments-db@1")
    assert "| 状态 | 已轮换 |" in md and "| 遏制用时（自发现起） | 3.00 秒 |" in md


def test_bundled_font_covers_every_chinese_character_keyguard_writes() -> None:
    from fontTools.ttLib import TTFont

    from keyguard.incident.report.fonts.subset import own_text

    cmap = TTFont(str(BUNDLED)).getBestCmap()
    missing = sorted({c for c in own_text() if ord(c) > 0x2E7F and ord(c) not in cmap})
    assert missing == [], "rebuild: python -m keyguard.incident.report.fonts.subset"


_RENDER = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{tests!r}]
    from incident.test_report_zh import _demo_like_data
    from keyguard.incident.report import render_report
    sys.stdout.buffer.write(render_report(_demo_like_data(), "pdf", "zh"))
    """
)


@pytest.mark.slow
def test_zh_pdf_embeds_a_cjk_font_on_a_machine_without_one(tmp_path: Path) -> None:
    """A fresh machine: fontconfig knows only DejaVu; the PDF must still carry Chinese glyphs."""
    pdffonts, pdftotext = shutil.which("pdffonts"), shutil.which("pdftotext")
    if pdffonts is None or pdftotext is None:
        pytest.skip("pdffonts / pdftotext (poppler-utils) not installed: see ci/apt-packages.txt")
    dejavu = Path("/usr/share/fonts/truetype/dejavu")
    if not dejavu.is_dir():
        pytest.skip("fonts-dejavu not installed")
    (tmp_path / "cache").mkdir()
    (tmp_path / "fonts.conf").write_text(
        f'<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd">'
        f"<fontconfig><dir>{dejavu}</dir><cachedir>{tmp_path / 'cache'}</cachedir></fontconfig>"
    )
    env = {"FONTCONFIG_FILE": str(tmp_path / "fonts.conf"), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    env["MPLCONFIGDIR"] = str(tmp_path / "mpl")
    env["PYTHONPATH"] = ":".join(p for p in sys.path if p)
    no_cjk = subprocess.run(["fc-list", ":lang=zh"], env=env, capture_output=True, text=True, check=True)
    assert no_cjk.stdout.strip() == ""  # the simulated machine really has no CJK font
    tests = str(Path(__file__).resolve().parents[1])
    rendered = subprocess.run(
        [sys.executable, "-c", _RENDER.format(tests=tests)], env=env, capture_output=True, check=True, timeout=240
    )
    pdf = tmp_path / "report-zh.pdf"
    pdf.write_bytes(rendered.stdout)
    fonts = subprocess.run([pdffonts, str(pdf)], capture_output=True, text=True, check=True).stdout
    embedded = [line for line in fonts.splitlines() if "Noto-Sans-CJK-SC" in line]
    assert embedded, fonts
    assert all(line.split()[-5] == "yes" for line in embedded), fonts  # the "emb" column
    text = subprocess.run([pdftotext, str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "事件报告" in text and "加固建议" in text and "风险等级的依据" in text
