"""Baseline files: known findings to ignore, identified by (path, rule, SHA-256 of the
secret) — never by line, so moving code does not resurface them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from keyguard.errors import DataFileError
from keyguard.scan.model import Finding

BASELINE_VERSION = 1
Identity = tuple[str, str, str]


def identity(finding: Finding) -> Identity:
    """The baseline identity of a finding."""
    return (finding.file, finding.rule, finding.secret_sha256)


def load_baseline(path: Path) -> set[Identity]:
    """Identities in a baseline file (an empty set when the file does not exist)."""
    if not path.exists():
        return set()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return {(str(e["file"]), str(e["rule"]), str(e["secret_sha256"])) for e in document["findings"]}
    except (OSError, ValueError, KeyError, TypeError):
        raise DataFileError(f"invalid baseline file {path}", hint="regenerate it with --update-baseline") from None


def write_baseline(path: Path, findings: Iterable[Finding]) -> int:
    """Write a baseline of ``findings`` (sorted, deduplicated); returns the entry count."""
    entries = sorted({identity(f) for f in findings})
    document = {
        "version": BASELINE_VERSION,
        "generated_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "findings": [{"file": p, "rule": r, "secret_sha256": h} for p, r, h in entries],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return len(entries)


def filter_new(findings: Iterable[Finding], known: set[Identity]) -> list[Finding]:
    """Findings whose identity is not in the baseline."""
    return [f for f in findings if identity(f) not in known]
