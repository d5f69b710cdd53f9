"""The rule catalog: TOML files (one per provider family) loaded, checked and validated
against their own examples. A catalog whose examples fail does not load.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from keyguard.errors import DataFileError
from keyguard.scan.model import Origin
from keyguard.scan.rule import Rule, parse_rule

EXAMPLE_SEEDS = (0, 1)


@dataclass(frozen=True)
class ExampleFailure:
    """One example that did not behave as its rule says."""

    rule: str
    kind: str  # "true_positive" | "false_positive"
    index: int
    found: int

    def __str__(self) -> str:
        want = "exactly one finding" if self.kind == "true_positive" else "no finding"
        return f"rule {self.rule}: {self.kind} example #{self.index} gave {self.found}, want {want}"


def parse_rule_file(text: str, family: str, where: str) -> list[Rule]:
    """Parse one TOML rule file (``[[rule]]`` tables)."""
    return [parse_rule(table, family) for table in rule_tables(text, where)]


def rule_tables(text: str, where: str) -> list[dict[str, Any]]:
    """The ``[[rule]]`` tables of one TOML rule file, unchecked."""
    import tomllib  # here: a cached catalog is loaded without it (start-up time)

    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataFileError(f"{where}: invalid TOML: {exc}") from None
    tables = document.get("rule", [])
    if not isinstance(tables, list) or not tables:
        raise DataFileError(f"{where}: no [[rule]] tables")
    return tables


def builtin_rule_texts() -> list[tuple[str, str]]:
    """``(family, TOML text)`` of every built-in rule file, sorted by family (read from the
    package's folder, as :func:`_catalog_key` reads its code: importlib.resources and the
    zipfile it imports cost a scan ~10 ms of start-up)."""
    folder = Path(__file__).parent / "rules"
    out = [(entry.stem, entry.read_text(encoding="utf-8")) for entry in folder.glob("*.toml") if entry.is_file()]
    return sorted(out)


def check_unique(rules: list[Rule]) -> None:
    """Raise DataFileError when two rules share an id."""
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise DataFileError(f"duplicate rule id {rule.id}")
        seen.add(rule.id)


def validate_examples(
    rules: list[Rule],
    subjects: list[Rule] | None = None,
    seeds: tuple[int, ...] = EXAMPLE_SEEDS,
    engine: str = "auto",
) -> list[ExampleFailure]:
    """Run each subject rule's examples through a scanner built from ``rules``."""
    from keyguard.scan.engine import Scanner
    from keyguard.scan.generate import expand  # examples only: not on a scan's start-up

    scanner = Scanner(rules, engine=engine)
    failures: list[ExampleFailure] = []
    for rule in subjects if subjects is not None else rules:
        if not rule.true_positives or not rule.false_positives:
            failures.append(ExampleFailure(rule.id, "missing_examples", 0, 0))
            continue
        for seed in seeds:
            rng = random.Random(f"{rule.id}:{seed}")
            for index, template in enumerate(rule.true_positives):
                text = expand(template, rng)
                found = _count(scanner, text, rule.id)
                if found != 1:
                    failures.append(ExampleFailure(rule.id, "true_positive", index, found))
            for index, template in enumerate(rule.false_positives):
                text = expand(template, rng)
                found = _count(scanner, text, rule.id)
                if found:
                    failures.append(ExampleFailure(rule.id, "false_positive", index, found))
    return failures


def _count(scanner: object, text: str, rule_id: str) -> int:
    from keyguard.scan.engine import Scanner

    assert isinstance(scanner, Scanner)
    findings = scanner.scan_bytes(text.encode(), Origin("example"))
    return sum(f.rule == rule_id for f in findings)


def load_rules(extra_files: tuple[Path, ...] = (), *, validate: bool = True, builtin: bool = True) -> list[Rule]:
    """Load the built-in catalog plus ``extra_files``; refuse it if an example fails."""
    rules = list(_builtin(validate)) if builtin else []
    extra: list[Rule] = []
    for path in extra_files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise DataFileError(f"cannot read rule file {path}: {exc.strerror}") from None
        extra.extend(parse_rule_file(text, path.stem, str(path)))
    rules.extend(extra)
    check_unique(rules)
    if validate and extra:
        _raise_on(validate_examples(rules, extra))
    return rules


def _raise_on(failures: list[ExampleFailure]) -> None:
    if failures:
        raise DataFileError(f"rule catalog refused: {failures[0]}", hint=f"{len(failures)} example(s) failed")


def _catalog_key(texts: list[tuple[str, str]]) -> Path:
    """The cache path stem of this exact catalog with this exact scanner code."""
    digest = hashlib.sha256()
    for family, text in texts:
        digest.update(family.encode() + b"\0" + text.encode() + b"\0")
    package = Path(__file__).parent
    for source in sorted(package.rglob("*.py")):
        digest.update(source.read_bytes())
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "keyguard" / f"catalog-{digest.hexdigest()[:32]}"


def _validated_marker(texts: list[tuple[str, str]]) -> Path | None:
    """A cache file whose existence records that this exact catalog, with this exact
    scanner code, passed its examples on this machine (None if no cache folder)."""
    return _catalog_key(texts).with_suffix(".ok")


def _builtin_tables(texts: list[tuple[str, str]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """``(family, rule tables)`` of the built-in files. Parsing the TOML (and importing
    tomllib) is a fifth of a small scan's start-up: the tables are kept in the cache folder
    (JSON, keyed by the files' and the code's digest) and every rule is still checked by
    :func:`parse_rule` on load."""
    cached = _catalog_key(texts).with_suffix(".tables")
    try:
        loaded = json.loads(cached.read_bytes())
        if isinstance(loaded, list) and len(loaded) == len(texts):
            return [(str(family), list(tables)) for family, tables in loaded]
    except (OSError, ValueError, TypeError):
        pass
    tables = [(family, rule_tables(text, f"rules/{family}.toml")) for family, text in texts]
    try:
        data = json.dumps(tables, allow_nan=False).encode()
        cached.parent.mkdir(parents=True, exist_ok=True)
        scratch = cached.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_bytes(data)
        scratch.replace(cached)  # whole or absent: a concurrent scan never reads half a file
    except (OSError, ValueError):
        pass  # a read-only home or a value JSON does not take (a TOML date): parse every time
    return tables


def _checked_groups(marker: Path | None, count: int) -> list[int] | None:
    """The secret groups the validated marker recorded, one per rule (None if absent)."""
    if marker is None:
        return None
    try:
        groups = json.loads(marker.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(groups, list) or len(groups) != count or not all(type(g) is int for g in groups):
        return None
    return groups


@lru_cache(maxsize=2)
def _builtin(validate: bool) -> tuple[Rule, ...]:
    texts = builtin_rule_texts()
    tables = _builtin_tables(texts)
    marker = _validated_marker(texts)
    # a catalog that passed its examples with this exact code records each rule's secret
    # group: its regexes are then compiled on first use only (start-up time)
    groups = _checked_groups(marker, sum(len(t) for _, t in tables))
    rules: list[Rule] = []
    if groups is not None:
        numbered = iter(groups)
        for family, family_tables in tables:
            rules.extend(parse_rule(table, family, secret_group=next(numbered)) for table in family_tables)
        check_unique(rules)
        return tuple(rules)
    for family, family_tables in tables:
        rules.extend(parse_rule(table, family) for table in family_tables)
    check_unique(rules)
    if validate:
        _raise_on(validate_examples(rules, seeds=(0,)))
        try:
            if marker is not None:
                marker.parent.mkdir(parents=True, exist_ok=True)
                scratch = marker.with_suffix(f".{os.getpid()}.tmp")
                scratch.write_text(json.dumps([rule.secret_group for rule in rules]))
                scratch.replace(marker)  # whole or absent, as the tables
        except OSError:
            pass  # a read-only home: validate on every load instead
    return tuple(rules)
