"""Message catalogs of reports and notices: ``keyguard.pot`` and ``<lang>/LC_MESSAGES/keyguard.po``.

``python -m keyguard.incident.locale`` re-extracts the template from the code
(every ``N_("…")`` / ``NC_("context", "…")`` under ``keyguard/incident``) and merges
it into each language's catalog, keeping the translations; new phrases appear
there with an empty ``msgstr`` for the translator.
"""

from __future__ import annotations

from pathlib import Path

from keyguard.incident.i18n import DOMAIN, LOCALE_DIR, catalog_path

#: Extraction keywords, in Babel's notation.
KEYWORDS: dict[str, object] = {"N_": None, "NC_": ((1, "c"), 2), "gettext": (2,)}
SOURCE_DIR = Path(__file__).resolve().parent.parent
TEMPLATE = LOCALE_DIR / f"{DOMAIN}.pot"


def extract() -> object:
    """The template catalog (a ``babel.messages.Catalog``) extracted from the incident code."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_dir

    catalog = Catalog(project="keyguard", domain=DOMAIN, charset="utf-8")
    found = extract_from_dir(
        str(SOURCE_DIR),
        method_map=[("**.py", "python")],
        keywords=KEYWORDS,  # type: ignore[arg-type]
        comment_tags=("TRANSLATORS:",),
        strip_comment_tags=True,
    )
    for filename, lineno, message, comments, context in found:
        path = (SOURCE_DIR / filename).relative_to(SOURCE_DIR.parent.parent)
        catalog.add(message, None, [(str(path), lineno)], auto_comments=comments, context=context)
    return catalog


def update(langs: tuple[str, ...] = ("zh",)) -> None:
    """Write the template and merge it into each catalog (translations kept, stale ones marked obsolete)."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po, write_po

    template = extract()
    assert isinstance(template, Catalog)
    with TEMPLATE.open("wb") as handle:
        write_po(handle, template, width=100, omit_header=False, sort_output=True)
    for lang in langs:
        path = catalog_path(lang)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file():
            with path.open("rb") as handle:
                catalog = read_po(handle, locale=lang, domain=DOMAIN)
        else:
            catalog = Catalog(locale=lang, domain=DOMAIN, project="keyguard")
        catalog.update(template, no_fuzzy_matching=True)
        with path.open("wb") as handle:
            write_po(handle, catalog, width=100, sort_output=True, ignore_obsolete=True)
