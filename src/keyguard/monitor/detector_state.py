"""The detector of imports and ``watch``: built from the rules and the vault's view of keys, with its saved state.

The detection engine is pure; this is where it meets the database: the vault's key
tiers and blocked versions, and the snapshot kept in ``monitor_state`` under
:data:`DETECTOR_STATE` (saved together with which segments detection has seen).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select

from keyguard.errors import DataFileError
from keyguard.monitor.detect.engine import DetectionEngine, verify_examples
from keyguard.monitor.detect.rules import load_rules
from keyguard.monitor.segments import mark_detected
from keyguard.monitor.store import get_state, put_state
from keyguard.store.db import write_tx
from keyguard.store.tables import Key, KeyVersion

DETECTOR_STATE = "detector"
BLOCKED_STATES = ("compromised", "disabled", "destroyed")


def _epoch(at: datetime) -> float:
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()


def vault_context(engine: Engine) -> tuple[dict[str, str], dict[str, dict[int, float]]]:
    """Key tiers, and the blocked versions with the time they were blocked, from the vault's tables.

    ``key_versions.state_changed_at`` is when the version entered its blocked state, so
    an event is judged by the version's state at the event's own time (uses before the
    compromise are not tripwire hits).
    """
    with engine.connect() as conn:
        tiers: dict[str, str] = {str(n): str(t) for n, t in conn.execute(select(Key.name, Key.tier))}
        blocked: dict[str, dict[int, float]] = {}
        rows = conn.execute(
            select(Key.name, KeyVersion.version, KeyVersion.state_changed_at)
            .join(KeyVersion, KeyVersion.key_id == Key.id)
            .where(KeyVersion.state.in_(BLOCKED_STATES))
        )
        for name, version, since in rows:
            blocked.setdefault(name, {})[int(version)] = _epoch(since)
    return tiers, blocked


def key_owners(engine: Engine) -> dict[str, str]:
    """Each vault key's owner (the off-hours rule's business hours are per owner)."""
    with engine.connect() as conn:
        return {str(n): str(o or "") for n, o in conn.execute(select(Key.name, Key.owner))}


def load_detector(engine: Engine, rule_paths: list[Path] | None = None) -> DetectionEngine:
    """A detection engine with the rules, the vault's tiers and blocked versions, saved state."""
    tiers, blocked = vault_context(engine)
    rules = load_rules(rule_paths)
    if rule_paths is not None:  # user-written rules must pass their own examples (gitleaks)
        for rule in rules:
            failures = verify_examples(rule)
            if failures:
                raise DataFileError(
                    f"rule {rule.id} fails its examples: {'; '.join(failures)}",
                    hint="fix the thresholds or the examples",
                )
    detector = DetectionEngine(rules, tiers=tiers, compromised=blocked, owners=key_owners(engine))
    state = get_state(engine, DETECTOR_STATE)
    if state is not None:
        detector.restore(state)
    return detector


def save_detector(engine: Engine, detector: DetectionEngine, segments: Sequence[int] = ()) -> None:
    """Persist the detector's snapshot, and that it has seen ``segments`` (one transaction)."""
    with write_tx(engine) as conn:
        put_state(conn, DETECTOR_STATE, detector.snapshot())
        mark_detected(conn, segments)
