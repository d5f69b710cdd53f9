"""Importers: one module per format, each a streaming ``parse(stream, name=, options=)``."""

from __future__ import annotations

from keyguard.errors import UsageError
from keyguard.monitor.importers import cloudtrail, combined, csv_log, jsonl, vault_audit
from keyguard.monitor.importers.base import Importer, ImportOptions, Parsed, Rejected

IMPORTERS: dict[str, Importer] = {
    "jsonl": jsonl.parse,
    "cloudtrail": cloudtrail.parse,
    "vault-audit": vault_audit.parse,
    "csv": csv_log.parse,
    "combined": combined.parse,
}


def get_importer(fmt: str) -> Importer:
    """The importer of format ``fmt``; a UsageError names the known formats."""
    try:
        return IMPORTERS[fmt]
    except KeyError:
        raise UsageError(f"unknown import format {fmt!r}", hint="use " + ", ".join(sorted(IMPORTERS))) from None


__all__ = ["IMPORTERS", "ImportOptions", "Importer", "Parsed", "Rejected", "get_importer"]
