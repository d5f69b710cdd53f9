"""Detection: rules as YAML data, small detectors, and a pure streaming engine."""

from __future__ import annotations

from keyguard.monitor.detect.engine import AlertUpdate, DetectionEngine
from keyguard.monitor.detect.rules import RuleSpec, load_rules

__all__ = ["AlertUpdate", "DetectionEngine", "RuleSpec", "load_rules"]
