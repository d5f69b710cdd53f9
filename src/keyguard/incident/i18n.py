"""Fixed phrases of notices and reports, translated through gettext message catalogs.

The English text in the code is the message id (``N_("…")`` marks it for
extraction); translations live in ``incident/locale/<lang>/LC_MESSAGES/keyguard.po``
next to the template ``incident/locale/keyguard.pot``, so a translator edits only
those files. The ``.po`` file is compiled with Babel when first used (no build step,
never a stale ``.mo``). Regenerate the template after changing a phrase:
``python -m keyguard.incident.locale``.
"""

from __future__ import annotations

import gettext as _gettext
import io
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import cache
from pathlib import Path

from keyguard.clock import format_time

LANGS = ("en", "zh")
DOMAIN = "keyguard"
LOCALE_DIR = Path(__file__).with_name("locale")


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "translate later"
    """Mark ``message`` for extraction into the catalog; translated where it is shown."""
    return message


def NC_(context: str, message: str) -> tuple[str, str]:  # noqa: N802 - gettext convention
    """Mark ``message`` in ``context`` (the same English word meaning another thing) for extraction."""
    return (context, message)


def catalog_path(lang: str) -> Path:
    """Where the ``.po`` catalog of ``lang`` lives."""
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(lang: str) -> _gettext.NullTranslations:
    """The compiled catalog of ``lang`` (English and unknown languages: the ids themselves)."""
    path = catalog_path(lang)
    if lang == "en" or not path.is_file():
        return _gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with path.open("rb") as handle:
        catalog = read_po(handle, locale=lang, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return _gettext.GNUTranslations(buffer)


def gettext(lang: str, message: str | tuple[str, str]) -> str:
    """``message`` (an English message id, or a ``(context, id)`` pair) in ``lang``."""
    catalog = translations("zh" if lang == "zh" else "en")
    if isinstance(message, tuple):
        return catalog.pgettext(*message)
    return catalog.gettext(message)


class Localised(Mapping[str, Mapping[str, str]]):
    """``table[lang][key]``: a table of message ids, read translated per language."""

    def __init__(self, messages: Mapping[str, str | tuple[str, str]]) -> None:
        self.messages = messages

    def __getitem__(self, lang: str) -> Mapping[str, str]:
        if lang not in LANGS:
            raise KeyError(lang)
        return {key: gettext(lang, message) for key, message in self.messages.items()}

    def __iter__(self) -> Iterator[str]:
        return iter(LANGS)

    def __len__(self) -> int:
        return len(LANGS)


DATA_CLASS_NAMES = Localised(
    {
        "pii": N_("personal identification data"),
        "payment": N_("payment data"),
        "credentials": N_("account credentials"),
        "secrets": N_("secrets and keys"),
        "other": N_("other data"),
    }
)

PHRASES = Localised(
    {
        "placeholder": N_("[to be completed: {what}]"),
        "draft": N_("DRAFT prepared by keyguard from the incident record. Check every statement before sending."),
        "notice": N_("Notice: {title}"),
        "not_applicable": N_(
            "On the facts recorded, this regulation does not apply to the incident "
            "(check jurisdictions, data classes and flags)."
        ),
        "to": N_("To"),
        "regulation": N_("Legal basis"),
        "due": N_("Due"),
        "deadline": N_("Deadline"),
        "incident": N_("Incident"),
        "no_due": N_("no fixed due time"),
        "nature": N_(
            "The key {keys} was exposed at {exposed_at} ({source}); the exposure was detected at "
            "{detected_at}. Anyone holding the key could decrypt the data protected by it{data}."
        ),
        "nature_data": N_(": {classes}"),
        "unknown_source": N_("source not yet established"),
        "records": N_("{records} records"),
        "consequences_default": N_(
            "Data encrypted under the leaked key may have been read or altered by an unauthorised "
            "party (risk grade: {severity})."
        ),
        "advice": N_(
            "Be alert to messages that refer to this incident and ask for passwords or payments; "
            "change the password of your account if credentials were involved; check your payment "
            "statements and report anything unusual to us."
        ),
        "measure_done": N_("{at}: {what}"),
        "measure_open": N_("by {at}: {what}"),
        "none_yet": N_("none recorded yet"),
        "suspected": N_("Suspected: the key was exposed at {source}; misuse is {misuse}."),
        "misuse_yes": N_("evidenced by the audit log"),
        "misuse_unknown": N_("being assessed"),
        "cross_border": N_("Jurisdictions concerned: {j}"),
        "materiality": "{text}",
        "notice_title": N_("Notice of Data Breach"),
    }
)

SEVERITY_NAMES = Localised(
    {
        "high": N_("high"),
        "medium": N_("medium"),
        "low": N_("low"),
        "critical": N_("critical"),
        "unknown": N_("not yet graded"),
    }
)


def phrase(lang: str, key: str, **values: object) -> str:
    """The phrase ``key`` in ``lang``, formatted with ``values``."""
    return gettext(lang, PHRASES.messages[key]).format(**values)


def data_class_name(lang: str, data_class: str) -> str:
    """The readable name of a data class."""
    message = DATA_CLASS_NAMES.messages.get(data_class)
    return gettext(lang, message) if message is not None else data_class


def severity_name(lang: str, severity: str) -> str:
    """The readable name of a risk grade or alert severity."""
    message = SEVERITY_NAMES.messages.get(severity)
    return gettext(lang, message) if message is not None else severity


def when(at: datetime | None, lang: str) -> str:
    """A time for people: RFC 3339 UTC, or the no-due phrase."""
    return format_time(at) if at is not None else phrase(lang, "no_due")
