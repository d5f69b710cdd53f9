"""SARIF 2.1.0 output, in the shape GitHub code scanning accepts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keyguard.scan.model import Finding

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "1.0"}


def _uri(path: str) -> str:
    path = path.replace("\\", "/")
    return path[2:] if path.startswith("./") else path


def _region(finding: Finding) -> dict[str, int]:
    lines = finding.secret.split("\n")
    start = {"startLine": max(1, finding.line), "startColumn": max(1, finding.column)}
    if len(lines) > 1:
        return {
            **start,
            "endLine": start["startLine"] + len(lines) - 1,
            "endColumn": len(lines[-1]) + 1,
        }
    return {**start, "endColumn": max(finding.end_column, finding.column + 1)}


def sarif_document(findings: Sequence[Finding], *, show_secrets: bool = False) -> dict[str, Any]:
    """Build the SARIF log: one rule descriptor per rule id seen, one result per finding."""
    from keyguard import __version__ as version

    rule_index: dict[str, int] = {}
    rules: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for finding in findings:
        if finding.rule not in rule_index:
            rule_index[finding.rule] = len(rules)
            rules.append(
                {
                    "id": finding.rule,
                    "name": "".join(p.capitalize() for p in finding.rule.split("-")),
                    "shortDescription": {"text": finding.description},
                    "fullDescription": {"text": finding.description},
                    "defaultConfiguration": {"level": LEVELS[finding.severity]},
                    "properties": {
                        "tags": ["security", "secret", *finding.tags],
                        "security-severity": SECURITY_SEVERITY[finding.severity],
                    },
                }
            )
        secret = finding.secret if show_secrets else finding.redacted()
        where = f" in commit {finding.commit[:12]}" if finding.commit else ""
        result: dict[str, Any] = {
            "ruleId": finding.rule,
            "ruleIndex": rule_index[finding.rule],
            "level": LEVELS[finding.severity],
            "message": {"text": f"{finding.description}: {secret}{where}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(finding.file)},
                        "region": _region(finding),
                    }
                }
            ],
            "partialFingerprints": {"keyguardFingerprint/v1": finding.fingerprint},
            "properties": {
                "severity": finding.severity,
                "entropy": round(finding.entropy, 3),
                "commit": finding.commit,
                "author": finding.author,
                "email": finding.email,
                "date": finding.date,
                "managed_key": finding.managed_key,
            },
        }
        results.append(result)
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "keyguard",
                        "semanticVersion": version,
                        "rules": rules,
                    }
                },
                "results": results,
                "columnKind": "unicodeCodePoints",
            }
        ],
    }
