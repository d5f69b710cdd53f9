"""``.keyguard.toml``: project allowlists (global paths/regexes/stopwords and per rule).

Example::

    [allowlist]
    paths = ['''^tests/fixtures/''']
    regexes = ['''^AKIA[A-Z0-9]{12}TEST$''']
    stopwords = ["dummy"]

    [rules.generic-password]
    paths = ['''\\.md$''']
    regexes = ['''^hunter''']

    [scan]
    disabled_rules = ["jwt"]
    max_expanded_bytes = 536870912   # what compressed input may expand to, per input
    max_expansion_ratio = 200        # expanded / compressed, checked past 16 MiB
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keyguard.errors import DataFileError
from keyguard.scan.rule import Allowlist, parse_allowlist

CONFIG_NAME = ".keyguard.toml"


@dataclass(frozen=True, slots=True)
class ExpandLimits:
    """Bounds on what compressed input may expand to (``[scan]`` in .keyguard.toml)."""

    max_expanded_bytes: int = 512 * 1024 * 1024  # per top-level input, all members together
    max_expansion_ratio: float = 200.0  # expanded bytes / compressed bytes read
    ratio_floor: int = 16 * 1024 * 1024  # the ratio applies once this much has expanded


@dataclass(frozen=True)
class ScanConfig:
    """Project-level scan settings: global and per-rule allowlists, disabled rules."""

    allowlist: Allowlist = field(default_factory=Allowlist)
    rule_allowlists: dict[str, Allowlist] = field(default_factory=dict)
    disabled_rules: frozenset[str] = frozenset()
    extra_rule_files: tuple[Path, ...] = ()
    limits: ExpandLimits = field(default_factory=ExpandLimits)

    def allows_path(self, path: str) -> bool:
        """True when the whole path is allowlisted."""
        return self.allowlist.allows_path(path)

    def allows_secret(self, rule_id: str, secret: str, matched: str) -> bool:
        """True when the value is allowlisted globally or for ``rule_id``."""
        if self.allowlist.allows_secret(secret, matched):
            return True
        per_rule = self.rule_allowlists.get(rule_id)
        return per_rule is not None and per_rule.allows_secret(secret, matched)

    def allows_rule_path(self, rule_id: str, path: str) -> bool:
        """True when ``path`` is allowlisted for ``rule_id``."""
        per_rule = self.rule_allowlists.get(rule_id)
        return per_rule is not None and per_rule.allows_path(path)


def parse_config(document: dict[str, Any], where: str = CONFIG_NAME, base: Path | None = None) -> ScanConfig:
    """Build a :class:`ScanConfig` from a parsed TOML document."""
    try:
        rules = {
            str(rule_id): parse_allowlist(table, f"{where} [rules.{rule_id}]")
            for rule_id, table in document.get("rules", {}).items()
        }
        scan = document.get("scan", {})
        extra = tuple((base or Path(".")) / str(p) for p in scan.get("rule_files", []))
        defaults = ExpandLimits()
        limits = ExpandLimits(
            max_expanded_bytes=int(scan.get("max_expanded_bytes", defaults.max_expanded_bytes)),
            max_expansion_ratio=float(scan.get("max_expansion_ratio", defaults.max_expansion_ratio)),
        )
        if limits.max_expanded_bytes < 1 or limits.max_expansion_ratio < 1:
            raise DataFileError(f"{where}: [scan] max_expanded_bytes and max_expansion_ratio must be >= 1")
        return ScanConfig(
            allowlist=parse_allowlist(document.get("allowlist", {}), where),
            rule_allowlists=rules,
            disabled_rules=frozenset(str(r) for r in scan.get("disabled_rules", [])),
            extra_rule_files=extra,
            limits=limits,
        )
    except (AttributeError, TypeError, ValueError) as exc:
        raise DataFileError(f"{where}: malformed configuration ({type(exc).__name__})") from None


def load_config(path: Path | None, search_from: Path | None = None) -> ScanConfig:
    """Load ``path`` or, if None, ``.keyguard.toml`` in ``search_from`` (or its git root)."""
    if path is None:
        start = (search_from or Path.cwd()).resolve()
        if start.is_file():
            start = start.parent
        for folder in (start, *start.parents):
            candidate = folder / CONFIG_NAME
            if candidate.is_file():
                path = candidate
                break
            if (folder / ".git").exists():
                break
    if path is None:
        return ScanConfig()
    import tomllib  # here: a scan without a project file never loads it (start-up time)

    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataFileError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DataFileError(f"{path}: invalid TOML: {exc}") from None
    return parse_config(document, str(path), path.parent)
