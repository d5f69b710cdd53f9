"""Fixed phrases of notices and reports in English and Simplified Chinese."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from keyguard.clock import format_time

LANGS = ("en", "zh")

DATA_CLASS_NAMES: Mapping[str, Mapping[str, str]] = {
    "en": {
        "pii": "personal identification data",
        "payment": "payment data",
        "credentials": "account credentials",
        "secrets": "secrets and keys",
        "other": "other data",
    },
    "zh": {
        "pii": "个人身份信息",
        "payment": "支付信息",
        "credentials": "账户凭证",
        "secrets": "密钥及机密信息",
        "other": "其他数据",
    },
}

PHRASES: Mapping[str, Mapping[str, str]] = {
    "en": {
        "placeholder": "[to be completed: {what}]",
        "draft": ("DRAFT prepared by keyguard from the incident record. Check every statement before sending."),
        "notice": "Notice: {title}",
        "not_applicable": (
            "On the facts recorded, this regulation does not apply to the incident "
            "(check jurisdictions, data classes and flags)."
        ),
        "to": "To",
        "regulation": "Legal basis",
        "due": "Due",
        "deadline": "Deadline",
        "incident": "Incident",
        "no_due": "no fixed due time",
        "nature": (
            "The key {keys} was exposed at {exposed_at} ({source}); the exposure was detected at "
            "{detected_at}. Anyone holding the key could decrypt the data protected by it{data}."
        ),
        "nature_data": ": {classes}",
        "unknown_source": "source not yet established",
        "records": "{records} records",
        "consequences_default": (
            "Data encrypted under the leaked key may have been read or altered by an unauthorised "
            "party (risk grade: {severity})."
        ),
        "advice": (
            "Be alert to messages that refer to this incident and ask for passwords or payments; "
            "change the password of your account if credentials were involved; check your payment "
            "statements and report anything unusual to us."
        ),
        "measure_done": "{at}: {what}",
        "measure_open": "by {at}: {what}",
        "none_yet": "none recorded yet",
        "suspected": "Suspected: the key was exposed at {source}; misuse is {misuse}.",
        "misuse_yes": "evidenced by the audit log",
        "misuse_unknown": "being assessed",
        "cross_border": "Jurisdictions concerned: {j}",
        "materiality": "{text}",
        "notice_title": "Notice of Data Breach",
    },
    "zh": {
        "placeholder": "【待补充：{what}】",
        "draft": "本草稿由 keyguard 根据事件记录生成，发送前请逐项核实。",
        "notice": "通知：{title}",
        "not_applicable": ("根据已记录的事实，本法规不适用于该事件（请核对司法辖区、数据类别和标记）。"),
        "to": "报送对象",
        "regulation": "法律依据",
        "due": "截止时间",
        "deadline": "时限要求",
        "incident": "事件",
        "no_due": "无固定截止时间",
        "nature": (
            "密钥 {keys} 于 {exposed_at} 暴露（{source}），于 {detected_at} 被发现。"
            "持有该密钥者可解密受其保护的数据{data}。"
        ),
        "nature_data": "：{classes}",
        "unknown_source": "泄露来源尚待查明",
        "records": "{records} 条记录",
        "consequences_default": ("受该密钥保护的数据可能已被未经授权的一方读取或篡改（风险等级：{severity}）。"),
        "advice": (
            "请警惕提及本事件并索要密码或付款的信息；如涉及账户凭证，请修改账户密码；"
            "请核对您的支付记录，发现异常请及时与我们联系。"
        ),
        "measure_done": "{at}：{what}",
        "measure_open": "计划于 {at} 前：{what}",
        "none_yet": "暂无记录",
        "suspected": "初步判断：密钥暴露于 {source}；滥用情况{misuse}。",
        "misuse_yes": "已在审计日志中发现证据",
        "misuse_unknown": "正在评估",
        "cross_border": "涉及的司法辖区：{j}",
        "materiality": "{text}",
        "notice_title": "数据泄露通知",
    },
}

SEVERITY_NAMES: Mapping[str, Mapping[str, str]] = {
    "en": {"high": "high", "medium": "medium", "low": "low", "unknown": "not yet graded"},
    "zh": {"high": "高", "medium": "中", "low": "低", "unknown": "尚未评定"},
}


def phrase(lang: str, key: str, **values: object) -> str:
    """The phrase ``key`` in ``lang``, formatted with ``values``."""
    return PHRASES["zh" if lang == "zh" else "en"][key].format(**values)


def data_class_name(lang: str, data_class: str) -> str:
    """The readable name of a data class."""
    return DATA_CLASS_NAMES["zh" if lang == "zh" else "en"].get(data_class, data_class)


def when(at: datetime | None, lang: str) -> str:
    """A time for people: RFC 3339 UTC, or the no-due phrase."""
    return format_time(at) if at is not None else phrase(lang, "no_due")
