"""Secret scanner: find leaked keys in files, archives and git history (issue 4)."""

from __future__ import annotations

from keyguard.scan.catalog import load_rules
from keyguard.scan.config import ScanConfig, load_config
from keyguard.scan.engine import Scanner
from keyguard.scan.model import Finding, Origin

__all__ = ["Finding", "Origin", "ScanConfig", "Scanner", "load_config", "load_rules"]
