"""Notification drafts: the content a regulation requires, filled from the incident."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from keyguard.clock import format_time
from keyguard.incident.i18n import SEVERITY_NAMES, data_class_name, phrase, when
from keyguard.incident.model import Incident
from keyguard.incident.report.phrases import TIMELINE, translate
from keyguard.incident.schema import RegulationSpec
from keyguard.incident.templates import environment


@dataclass(frozen=True)
class NoticeContext:
    """What a fill function may use besides the incident."""

    incident: Incident
    lang: str
    now: datetime
    contact: str
    organisation: str


def _placeholder(ctx: NoticeContext, what: str) -> str:
    return phrase(ctx.lang, "placeholder", what=what)


def _keys(ctx: NoticeContext) -> str:
    return ", ".join(str(k) for k in ctx.incident.keys)


def _classes(ctx: NoticeContext) -> str:
    names = [data_class_name(ctx.lang, c) for c in ctx.incident.data_classes]
    return ("、" if ctx.lang == "zh" else ", ").join(names)


def _source(ctx: NoticeContext) -> str:
    """Where the leak came from, in the notice's language (the incident stores it in English)."""
    if not ctx.incident.source:
        return phrase(ctx.lang, "unknown_source")
    return translate(ctx.lang, ctx.incident.source, TIMELINE)


def _nature(ctx: NoticeContext) -> str:
    inc = ctx.incident
    classes = _classes(ctx)
    return phrase(
        ctx.lang,
        "nature",
        keys=_keys(ctx),
        exposed_at=format_time(inc.exposed_at),
        detected_at=format_time(inc.detected_at),
        source=_source(ctx),
        data=phrase(ctx.lang, "nature_data", classes=classes) if classes else "",
    )


def _records(ctx: NoticeContext) -> str:
    records = ctx.incident.impact.get("records")
    if isinstance(records, int):
        return phrase(ctx.lang, "records", records=f"{records:,}")
    return _placeholder(ctx, "records" if ctx.lang == "en" else "记录数量")


def _severity(ctx: NoticeContext) -> str:
    return SEVERITY_NAMES[ctx.lang][str(ctx.incident.severity)]


def _consequences(ctx: NoticeContext) -> str:
    factors = ctx.incident.impact.get("factors")
    lines = [
        str(f.get(ctx.lang) or f.get("en"))
        for f in (factors if isinstance(factors, list) else [])
        if isinstance(f, dict) and f.get("en")
    ]
    default = phrase(ctx.lang, "consequences_default", severity=_severity(ctx))
    return "\n".join([default, *[f"- {r}" for r in lines]])


def _measures(ctx: NoticeContext, done: bool) -> str:
    lines = [
        phrase(ctx.lang, "measure_done", at=format_time(t.done_at), what=t.title.get(ctx.lang))
        if done and t.done_at
        else phrase(ctx.lang, "measure_open", at=format_time(t.due_at), what=t.title.get(ctx.lang))
        for t in ctx.incident.tasks
        if (t.done_at is not None) == done
    ]
    return "\n".join(f"- {line}" for line in lines) or phrase(ctx.lang, "none_yet")


def _suspected(ctx: NoticeContext) -> str:
    misuse = "misuse_yes" if ctx.incident.impact.get("anomalies") else "misuse_unknown"
    return phrase(ctx.lang, "suspected", source=_source(ctx), misuse=phrase(ctx.lang, misuse))


def _text_or_placeholder(ctx: NoticeContext, value: object, what_en: str, what_zh: str) -> str:
    if isinstance(value, str) and value.strip():
        return value
    return _placeholder(ctx, what_zh if ctx.lang == "zh" else what_en)


FILLS: dict[str, Callable[[NoticeContext], str]] = {
    "nature": _nature,
    "keys": _keys,
    "data_classes": lambda c: _classes(c) or _placeholder(c, "data categories" if c.lang == "en" else "数据类别"),
    "records": _records,
    "severity": _severity,
    "consequences": _consequences,
    "measures_taken": lambda c: _measures(c, True),
    "measures_planned": lambda c: _measures(c, False),
    "contact": lambda c: _text_or_placeholder(c, c.contact, "contact point", "联系人及联系方式"),
    "organisation": lambda c: _text_or_placeholder(c, c.organisation, "organisation", "单位名称"),
    "detected_at": lambda c: format_time(c.incident.detected_at),
    "exposed_at": lambda c: format_time(c.incident.exposed_at),
    "root_cause": lambda c: _text_or_placeholder(c, c.incident.root_cause, "root cause", "原因分析"),
    "advice": lambda c: phrase(c.lang, "advice"),
    "suspected_cause": _suspected,
    "cross_border": lambda c: phrase(c.lang, "cross_border", j=", ".join(c.incident.jurisdictions) or "-"),
    "indicators": lambda c: _text_or_placeholder(
        c, c.incident.impact.get("indicators"), "indicators of compromise", "入侵指标"
    ),
    "delay_reason": lambda c: _text_or_placeholder(
        c, c.incident.impact.get("delay_reason"), "reason for any delay", "延迟理由"
    ),
    "materiality": lambda c: _text_or_placeholder(
        c, c.incident.impact.get("material_impact"), "material impact", "重大影响"
    ),
    "notice_title": lambda c: phrase(c.lang, "notice_title"),
}


def draft_notice(
    incident: Incident,
    spec: RegulationSpec,
    lang: str,
    *,
    now: datetime,
    contact: str = "",
    organisation: str = "",
) -> str:
    """The Markdown draft of the notice ``spec`` requires for ``incident`` in ``lang``."""
    ctx = NoticeContext(incident, lang, now, contact, organisation)
    ob = next((o for o in incident.obligations if o.regulation == spec.id), None)
    due = ob.due_at if ob is not None else None
    fields = [{"label": f.label.zh if lang == "zh" else f.label.en, "value": FILLS[f.fill](ctx)} for f in spec.content]
    return (
        environment()
        .get_template("notice.md.j2")
        .render(
            t=lambda key, **kw: phrase(lang, key, **kw),
            lang=lang,
            spec=spec,
            title=spec.title.zh if lang == "zh" else spec.title.en,
            audience=spec.audience.zh if lang == "zh" else spec.audience.en,
            deadline=spec.deadline.zh if lang == "zh" else spec.deadline.en,
            due=when(due, lang),
            applies=ob is not None,
            incident=incident,
            fields=fields,
        )
    )
