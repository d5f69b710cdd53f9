"""The plain data a report is made of (no vault or database needed to build one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from keyguard.incident.model import Incident


@dataclass(frozen=True)
class UsagePoint:
    """Uses of the leaked key in one hour (``hour`` is the start of the hour, UTC)."""

    hour: datetime
    count: int
    denied: int = 0


@dataclass(frozen=True)
class Anomaly:
    """Something unusual the assessment found."""

    at: datetime
    kind: str
    description: str
    severity: str = "medium"


@dataclass(frozen=True)
class DataItem:
    """A registered item (or ``items`` of them, aggregated) under a leaked key version."""

    name: str
    data_class: str
    records: int
    key: str
    version: int
    rewrapped: bool = False
    items: int = 1


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows: the incident plus usage, anomalies and data items.

    ``risk_factors`` are the reasons behind the risk grade as (en, zh) sentences.
    """

    incident: Incident
    now: datetime
    usage: Sequence[UsagePoint] = field(default_factory=tuple)
    anomalies: Sequence[Anomaly] = field(default_factory=tuple)
    data_items: Sequence[DataItem] = field(default_factory=tuple)
    organisation: str = ""
    exposed_items: Sequence[DataItem] = field(default_factory=tuple)
    risk_factors: Sequence[tuple[str, str]] = field(default_factory=tuple)

    @property
    def contained_at(self) -> datetime | None:
        """When the key was contained: the contained status, else the compromise task."""
        at = self.incident.status_history.get("contained")
        if at is not None:
            return at
        task = self.incident.task("compromise-key")
        return task.done_at if task is not None else None
