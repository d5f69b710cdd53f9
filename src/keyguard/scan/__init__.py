"""Secret scanner: find leaked keys in files, archives and git history (issue 4).

The names below are loaded on first use: ``keyguard scan --git`` imports the git reader
alone first, to start git before the catalog and the engine are loaded.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keyguard.scan.catalog import load_rules
    from keyguard.scan.config import ScanConfig, load_config
    from keyguard.scan.engine import Scanner
    from keyguard.scan.model import Finding, Origin

__all__ = ["Finding", "Origin", "ScanConfig", "Scanner", "load_config", "load_rules"]
_HOMES = {
    "Finding": "model",
    "Origin": "model",
    "ScanConfig": "config",
    "load_config": "config",
    "Scanner": "engine",
    "load_rules": "catalog",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"keyguard.scan.{home}"), name)
