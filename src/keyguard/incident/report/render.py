"""Render a :class:`ReportData` as Markdown, HTML (chart embedded as base64 PNG) or PDF."""

from __future__ import annotations

import base64
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from keyguard.clock import format_time
from keyguard.errors import KeyguardError, UsageError
from keyguard.incident.i18n import LANGS, data_class_name, gettext, severity_name
from keyguard.incident.model import ItemState
from keyguard.incident.report.chart import usage_chart_png
from keyguard.incident.report.data import ReportData
from keyguard.incident.report.fonts import FAMILY, font_face_css
from keyguard.incident.report.labels import HARDENING, LABELS, STATUS_NAMES, UNITS
from keyguard.incident.report.phrases import ANOMALIES, FACTORS, TIMELINE, TITLES, kind_name, translate
from keyguard.incident.templates import environment

FORMATS = ("md", "html", "pdf")
MAX_ITEM_ROWS = 50


def _span(delta: timedelta | None, lang: str = "en") -> str:
    if delta is None:
        return "-"
    units = UNITS[lang]
    sign = "-" if delta.total_seconds() < 0 else ""
    seconds = abs(int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if seconds < 60:
        return sign + units["seconds"].format(s=f"{abs(delta.total_seconds()):.2f}")
    if days:
        return sign + units["dhm"].format(d=days, h=hours, m=minutes)
    if hours:
        return sign + units["hm"].format(h=hours, m=minutes)
    return sign + units["ms"].format(m=minutes, s=secs)


def _time(at: datetime | None, none: str) -> str:
    return format_time(at.replace(microsecond=0)) if at is not None else none


def _short(at: datetime | None, none: str = "-") -> str:
    """A compact UTC time for table cells (the column header says UTC)."""
    return at.strftime("%Y-%m-%d %H:%M:%S") if at is not None else none


def build_context(data: ReportData, lang: str) -> dict[str, Any]:
    """The values the report templates show (shared by every format)."""
    t = LABELS[lang]
    inc = data.incident
    contained = data.contained_at
    status = STATUS_NAMES[lang].get(str(inc.status), str(inc.status))
    per_class: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item in data.data_items:
        per_class[item.data_class][0] += item.items
        per_class[item.data_class][1] += item.records
    total_records = sum(i.records for i in data.data_items)
    total_items = sum(i.items for i in data.data_items)
    phases = []
    for phase in inc.phases:
        done = phase.done_at
        if done is not None:
            result = t["met"] if done <= phase.due_at else t["missed"]
        else:
            result = t["overdue"] if phase.state(data.now) is ItemState.OVERDUE else t["open"]
        phases.append(
            {
                "name": phase.title.get(lang),
                "due": _short(phase.due_at),
                "done": _short(done),
                "result": result,
            }
        )
    tasks = []
    for task in inc.tasks:
        if task.done_at is not None:
            late = task.done_at - task.due_at
            result = t["met"] if late <= timedelta(0) else f"{t['missed']} (+{_span(late, lang)})"
        else:
            result = t["overdue"] if task.state(data.now) is ItemState.OVERDUE else t["open"]
        tasks.append(
            {
                "id": task.id,
                "title": task.title.get(lang),
                "due": _short(task.due_at),
                "done": _short(task.done_at),
                "by": task.done_by or "-",
                "result": result,
            }
        )
    usage_total = sum(p.count for p in data.usage)
    after = sum(p.count for p in data.usage if p.hour >= inc.exposed_at.replace(minute=0, second=0, microsecond=0))
    peak = max(data.usage, key=lambda p: p.count, default=None)
    usage_summary = (
        t["usage_summary"].format(total=usage_total, after=after, peak=peak.count, peak_at=_short(peak.hour))
        if peak is not None and usage_total
        else t["no_usage"]
    )
    open_tasks = [
        {
            "id": task.id,
            "title": task.title.get(lang),
            "owner": task.owner,
            "due": _short(task.due_at),
            "overdue": task.state(data.now) is ItemState.OVERDUE,
        }
        for task in inc.tasks
        if task.done_at is None
    ]
    open_obligations = [
        {
            "id": ob.regulation,
            "title": ob.title.get(lang),
            "owner": ob.audience.get(lang),
            "due": _short(ob.due_at, t["no_due"]),
            "overdue": ob.state(data.now) is ItemState.OVERDUE,
        }
        for ob in inc.obligations
        if ob.done_at is None
    ]
    return {
        "t": t,
        "lang": lang,
        "title": translate(lang, inc.title, TITLES),
        "incident_id": inc.id,
        "organisation": data.organisation,
        "generated": _time(data.now, "-"),
        "summary": [
            (t["keys"], ", ".join(str(k) for k in inc.keys)),
            (t["status"], status),
            (t["severity"], severity_name(lang, str(inc.severity))),
            (t["source"], translate(lang, inc.source, TIMELINE) if inc.source else "-"),
            (t["exposed"], _time(inc.exposed_at, "-")),
            (t["detected"], _time(inc.detected_at, "-")),
            (t["contained"], _time(contained, t["not_yet"])),
            (
                t["time_to_contain"],
                _span(contained - inc.detected_at, lang) if contained else t["not_yet"],
            ),
            (t["exposure"], _span((contained or data.now) - inc.exposed_at, lang)),
            (
                t["at_risk"],
                t["items_records"].format(items=f"{total_items:,}", records=f"{total_records:,}"),
            ),
        ],
        "phases": phases,
        "tasks": tasks,
        "events": [
            {
                "at": _short(e.at),
                "offset": _span(e.at - inc.detected_at, lang),
                "actor": e.actor,
                "what": translate(lang, e.message, TIMELINE),
            }
            for e in inc.timeline
        ],
        "per_class": [
            {"name": data_class_name(lang, c), "count": f"{n:,}", "records": f"{r:,}"}
            for c, (n, r) in sorted(per_class.items())
        ],
        "items": [
            {
                "name": i.name,
                "class": data_class_name(lang, i.data_class),
                "count": f"{i.items:,}",
                "records": f"{i.records:,}",
                "key": f"{i.key}@{i.version}",
                "rewrapped": t["yes"] if i.rewrapped else t["no"],
            }
            for i in data.data_items[:MAX_ITEM_ROWS]
        ],
        "more_items": max(0, len(data.data_items) - MAX_ITEM_ROWS),
        "exposed_title": t["exposed_items"].format(n=f"{len(data.exposed_items):,}"),
        "exposed": ", ".join(f"{i.name} ({i.key}@{i.version})" for i in data.exposed_items),
        "usage_summary": usage_summary,
        "anomalies": [
            {
                "at": _short(a.at),
                "kind": kind_name(lang, a.kind),
                "severity": severity_name(lang, a.severity),
                "description": translate(lang, a.description, ANOMALIES + TIMELINE),
            }
            for a in data.anomalies
        ],
        "obligations": [
            {
                "id": ob.regulation,
                "title": ob.title.get(lang),
                "audience": ob.audience.get(lang),
                "due": _short(ob.due_at, t["no_due"]),
                "state": str(ob.state(data.now)),
                "status": t["state_" + str(ob.state(data.now))],
                "done": _short(ob.done_at),
            }
            for ob in inc.obligations
        ],
        "root_cause": inc.root_cause,
        "risk_factors": [_factor(lang, en, zh) for en, zh in data.risk_factors],
        "open_actions": open_tasks + open_obligations,
        "hardening": [gettext(lang, h) for h in HARDENING],
        "chart": None,
        "font_face": font_face_css() if lang == "zh" else "",
        "cjk_family": FAMILY,
    }


def _factor(lang: str, en: str, zh: str) -> str:
    """A reason behind the grade in ``lang``: from the catalog when its shape is known, else as stored."""
    if lang != "zh":
        return en
    translated = translate(lang, en, FACTORS)
    return translated if translated != en else zh


def render_report(data: ReportData, fmt: str, lang: str = "en") -> bytes:
    """The report as bytes in ``fmt`` (md, html or pdf) and ``lang`` (en or zh)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown report format {fmt!r}", hint="md, html or pdf")
    if lang not in LANGS:
        raise UsageError(f"unknown language {lang!r}", hint="en or zh")
    context = build_context(data, lang)
    env = environment()
    if fmt == "md":
        return env.get_template("report.md.j2").render(**context).encode("utf-8")
    context["chart"] = base64.b64encode(usage_chart_png(data, lang)).decode("ascii")
    html = env.get_template("report.html.j2").render(**context)
    if fmt == "html":
        return html.encode("utf-8")
    return html_to_pdf(html)


def html_to_pdf(html: str) -> bytes:
    """Render HTML to PDF with WeasyPrint (CJK text in the bundled font the HTML declares)."""
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:
        raise KeyguardError(
            f"PDF rendering is unavailable: {exc}", hint="install weasyprint and its libraries"
        ) from None
    pdf: bytes = HTML(string=html).write_pdf()
    return pdf
