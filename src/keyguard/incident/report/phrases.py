"""Translate the English sentences other steps store (timeline, anomalies, risk factors).

The response steps and the assessment record their sentences in English on the
incident. Each known shape is a message id here, with named placeholders; a stored
sentence that matches one is shown through the catalog with its values kept (and
the values that are themselves phrases translated too). A sentence of unknown shape
is shown as stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cache

from keyguard.incident.i18n import N_, data_class_name, gettext, severity_name
from keyguard.incident.report.labels import STATUS_NAMES

#: Placeholders that only ever hold a number.
_NUMERIC = frozenset({"n", "m", "ok", "percent", "records", "threshold", "version"})

TIMELINE: tuple[str, ...] = (
    N_("leak detected ({source})"),
    N_("no source given"),
    N_("committed to version control: {where} by {author}"),
    N_("committed to version control: {where}"),
    N_("incident opened with playbook {playbook}; {n} obligation(s)"),
    N_("task {task} done (late): {note}"),
    N_("task {task} done: {note}"),
    N_("status → {status}"),
    N_("facts updated"),
    N_("rollout {percent}% done"),
    N_("leak traced to {where}"),
    N_("leak also found at {where}"),
    N_("{regulation} notice submitted"),
    N_("tripwire: {actor} attempted {op} with compromised {key} v{version}"),
    N_("{n} version(s) compromised"),
    N_("{n} version(s) disabled"),
    N_("{n} client(s) suspended"),
    N_("every leaked version refuses use"),
    N_("risk {grade}: {n} anomalies"),
    N_("{n} items re-wrapped"),
    N_("{n} obligation(s) scheduled"),
    N_("leaked versions are tripwires: any use is refused and alerts"),
    N_("every consumer uses the new version"),
    N_("reports written"),
    N_("{where} in commit {commit}"),
)

#: The title an incident gets when nobody gave one.
TITLES: tuple[str, ...] = (N_("Leaked key {keys}"),)

ANOMALIES: tuple[str, ...] = (
    N_("{key}: new source IP {ip} ({n} calls, {ok} succeeded)"),
    N_("{key}: new client {client} ({n} calls)"),
    N_("{key}: new user agent {agent} ({n} calls)"),
    N_("{key}: {n} calls in one minute (threshold {threshold})"),
    N_("{key}: {n} calls in a normally idle hour"),
    N_("{key}: {n} denied calls ({reason})"),
    N_("{key}: {n} error calls ({reason})"),
    N_("version {version} is compromised"),
    N_("version {version} is disabled"),
    N_("version {version} is destroyed"),
    N_("permission denied"),
    N_("rate limited"),
    N_("no reason"),
)

FACTORS: tuple[str, ...] = (
    N_("The key is {grade}-tier."),
    N_("It protects {records} records of sensitive data ({classes})."),
    N_("{n} source IP(s) never seen before the exposure used the key successfully (first: {ip})."),
    N_("{n} new client(s) and {m} new user agent(s) appeared."),
    N_("Use peaked at {n} calls in one minute ({minute}), above the baseline threshold of {threshold}."),
    N_("The key was used in {n} hour(s) when it is normally idle."),
    N_("{n} calls were refused after the exposure (probing or blocked use)."),
    N_("The key was exposed for {n} hours before detection."),
)

#: Kinds of anomaly, as the assessment and the monitor name them.
KINDS: dict[str, str] = {
    "new-source-ip": N_("new source IP"),
    "new-client": N_("new client"),
    "new-user-agent": N_("new user agent"),
    "burst": N_("burst"),
    "off-hours": N_("off-hours use"),
    "refused": N_("refused calls"),
    "alert": N_("alert"),
    "anomaly": N_("anomaly"),
}

#: Vault operations, as the audit log names them.
OPERATIONS: dict[str, str] = {
    "encrypt": N_("encrypt"),
    "decrypt": N_("decrypt"),
    "sign": N_("sign"),
    "verify": N_("verify"),
    "rewrap": N_("re-wrap"),
    "data-key": N_("generate a data key"),
}

_FIELD = re.compile(r"\{(\w+)\}")


@cache
def _pattern(message: str) -> re.Pattern[str]:
    parts: list[str] = []
    last = 0
    for match in _FIELD.finditer(message):
        parts.append(re.escape(message[last : match.start()]))
        name = match.group(1)
        parts.append(f"(?P<{name}>[0-9][0-9.,]*)" if name in _NUMERIC else f"(?P<{name}>.+?)")
        last = match.end()
    parts.append(re.escape(message[last:]))
    return re.compile("^" + "".join(parts) + "$", re.DOTALL)


def _classes(lang: str, value: str) -> str:
    names = [data_class_name(lang, c.strip()) for c in value.split(",")]
    return ("、" if lang == "zh" else ", ").join(names)


def _value(lang: str, name: str, value: str) -> str:
    """A captured value shown in ``lang``: phrases translated, data kept."""
    if name in ("source", "note", "reason", "where"):
        return translate(lang, value, TIMELINE + ANOMALIES)
    if name == "status":
        return STATUS_NAMES[lang].get(value, value)
    if name == "grade":
        return severity_name(lang, value)
    if name == "op" and value in OPERATIONS:
        return gettext(lang, OPERATIONS[value])
    if name == "classes":
        return _classes(lang, value)
    return value


def translate(lang: str, text: str, messages: Sequence[str]) -> str:
    """``text`` (an English sentence of one of the ``messages`` shapes) in ``lang``."""
    if lang == "en":
        return text
    for message in messages:
        match = _pattern(message).match(text)
        if match is not None:
            values = {k: _value(lang, k, v) for k, v in match.groupdict().items()}
            return gettext(lang, message).format(**values)
    return text


def translator(lang: str, messages: Sequence[str]) -> Callable[[str], str]:
    """``translate`` bound to ``lang`` and one family of shapes."""
    return lambda text: translate(lang, text, messages)


def kind_name(lang: str, kind: str) -> str:
    """The readable name of an anomaly kind (the identifier when unknown)."""
    message = KINDS.get(kind)
    return gettext(lang, message) if message is not None else kind
