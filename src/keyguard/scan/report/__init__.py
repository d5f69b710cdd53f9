"""Reporters: ``write(findings, stream, show_secrets)`` for json, jsonl, sarif and csv.

The Rich table lives in ``keyguard.cli.scan`` (the CLI does all Rich rendering).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from typing import TextIO

from keyguard.scan.model import Finding
from keyguard.scan.report.sarif import sarif_document

FIELDS = (
    "rule",
    "description",
    "severity",
    "file",
    "line",
    "column",
    "commit",
    "author",
    "email",
    "date",
    "secret",
    "fingerprint",
    "entropy",
    "managed_key",
    "resource",
)


def write_json(findings: Sequence[Finding], stream: TextIO, show_secrets: bool) -> None:
    """One JSON array of SPEC §5 records."""
    records = [f.to_record(show_secret=show_secrets) for f in findings]
    stream.write(json.dumps(records, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(findings: Sequence[Finding], stream: TextIO, show_secrets: bool) -> None:
    """One SPEC §5 record per line."""
    for finding in findings:
        stream.write(json.dumps(finding.to_record(show_secret=show_secrets), ensure_ascii=False))
        stream.write("\n")


def write_csv(findings: Sequence[Finding], stream: TextIO, show_secrets: bool) -> None:
    """CSV with a header row; ``managed_key`` as ``name:version``."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(FIELDS)
    for finding in findings:
        record = finding.to_record(show_secret=show_secrets)
        managed = record["managed_key"]
        record["managed_key"] = f"{managed['name']}:{managed['version']}" if managed else ""
        writer.writerow(["" if record[k] is None else record[k] for k in FIELDS])


def write_sarif(findings: Sequence[Finding], stream: TextIO, show_secrets: bool) -> None:
    """A SARIF 2.1.0 log with one run."""
    document = sarif_document(findings, show_secrets=show_secrets)
    stream.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


REPORTERS: dict[str, Callable[[Sequence[Finding], TextIO, bool], None]] = {
    "json": write_json,
    "jsonl": write_jsonl,
    "csv": write_csv,
    "sarif": write_sarif,
}

__all__ = ["FIELDS", "REPORTERS", "write_csv", "write_json", "write_jsonl", "write_sarif"]
