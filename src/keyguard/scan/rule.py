"""Detection rules as data: the :class:`Rule` record and its parsing from TOML tables."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from keyguard.errors import DataFileError
from keyguard.scan.filters import FILTERS
from keyguard.scan.validators import VALIDATORS

SEVERITIES = ("critical", "high", "medium", "low", "info")
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass(frozen=True, slots=True)
class Allowlist:
    """Values to ignore: regexes on the secret (or the whole match), stopwords, path regexes."""

    regexes: tuple[re.Pattern[str], ...] = ()
    stopwords: tuple[str, ...] = ()
    paths: tuple[re.Pattern[str], ...] = ()

    def allows_secret(self, secret: str, match: str = "") -> bool:
        """True when the secret (or the full matched text) is allowlisted."""
        low = secret.lower()
        if any(word in low for word in self.stopwords):
            return True
        return any(rx.search(secret) or (match and rx.search(match)) for rx in self.regexes)

    def allows_path(self, path: str) -> bool:
        """True when the path matches an allowlisted path regex."""
        return bool(self.paths) and any(rx.search(path) for rx in self.paths)


@dataclass(frozen=True, slots=True)
class Rule:
    """One detection rule (gitleaks shape plus keyguard's validators and filter opt-outs)."""

    id: str
    description: str
    pattern: str  # the regex's source; compiled on first use (see :attr:`regex`)
    keywords: tuple[str, ...]
    family: str = "custom"
    secret_group: int = 0
    entropy: float = 0.0
    severity: str = "high"
    tags: tuple[str, ...] = ()
    validator: str | None = None
    skip_filters: frozenset[str] = frozenset()
    multiline: bool = False
    generic: bool = False
    prefilter: str | None = None
    allowlist: Allowlist = field(default_factory=Allowlist)
    absorbs: frozenset[str] = frozenset()  # rule ids whose findings nearby are the same credential
    true_positives: tuple[str, ...] = ()
    false_positives: tuple[str, ...] = ()
    _compiled: list[re.Pattern[str]] = field(default_factory=list, compare=False, repr=False)

    @property
    def regex(self) -> re.Pattern[str]:
        """The compiled regex. Compiling the catalog's 245 regexes is most of a scan's serial
        start-up, and most rules never see their keyword: each is compiled when first used
        (in the worker processes of a history scan, not in the parent before they fork)."""
        compiled = self._compiled
        if not compiled:
            compiled.append(re.compile(self.pattern))
        return compiled[0]


def _compile(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise DataFileError(f"{where}: regex does not compile: {exc}") from None


def parse_allowlist(table: dict[str, Any], where: str) -> Allowlist:
    """Build an :class:`Allowlist` from a TOML table (``regexes``, ``stopwords``, ``paths``)."""
    return Allowlist(
        regexes=tuple(_compile(p, where) for p in table.get("regexes", [])),
        stopwords=tuple(str(w).lower() for w in table.get("stopwords", [])),
        paths=tuple(_compile(p, where) for p in table.get("paths", [])),
    )


def parse_rule(table: dict[str, Any], family: str, *, secret_group: int | None = None) -> Rule:
    """Parse and check one ``[[rule]]`` table; raises DataFileError naming the rule.

    ``secret_group`` is the group this table's regex was found to have when it was last
    checked (a cached, validated catalog): the regex is then compiled on first use only."""
    rule_id = str(table.get("id", ""))
    where = f"rule {rule_id or '?'} ({family})"
    if not _ID.match(rule_id):
        raise DataFileError(f"{where}: id must be kebab-case")
    for key in ("description", "regex", "keywords"):
        if not table.get(key):
            raise DataFileError(f"{where}: missing {key}")
    compiled: list[re.Pattern[str]] = []
    if secret_group is None:
        regex = _compile(str(table["regex"]), where)
        compiled.append(regex)
        default_group = regex.groupindex.get("secret", 1 if regex.groups else 0)
        group = int(table.get("secret_group", default_group))
        if group > regex.groups:
            raise DataFileError(f"{where}: secret_group {group} > number of groups")
    else:
        group = secret_group
    severity = str(table.get("severity", "high"))
    if severity not in SEVERITIES:
        raise DataFileError(f"{where}: severity must be one of {', '.join(SEVERITIES)}")
    validator = table.get("validator")
    if validator is not None and validator not in VALIDATORS:
        raise DataFileError(f"{where}: unknown validator {validator!r}")
    skip = frozenset(str(s) for s in table.get("skip_filters", []))
    if skip - set(FILTERS) - {"all"}:
        raise DataFileError(f"{where}: unknown filter in skip_filters")
    generic = bool(table.get("generic", False))
    if not generic:
        skip = skip | {"identifier"}  # paths and identifiers only matter for generic rules
    examples = table.get("examples", {})
    return Rule(
        id=rule_id,
        description=str(table["description"]),
        pattern=str(table["regex"]),
        keywords=tuple(str(k).lower() for k in table["keywords"]),
        family=family,
        secret_group=group,
        entropy=float(table.get("entropy", 0.0)),
        severity=severity,
        tags=tuple(str(t) for t in table.get("tags", [])),
        validator=validator,
        skip_filters=frozenset(FILTERS) if "all" in skip else skip,
        multiline=bool(table.get("multiline", False)),
        generic=generic,
        prefilter=str(table["prefilter"]) if table.get("prefilter") else None,
        allowlist=parse_allowlist(table.get("allowlist", {}), where),
        absorbs=frozenset(str(r) for r in table.get("absorbs", [])),
        true_positives=tuple(str(x) for x in examples.get("true_positives", [])),
        false_positives=tuple(str(x) for x in examples.get("false_positives", [])),
        _compiled=compiled,
    )
