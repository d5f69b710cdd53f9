"""The incident domain: playbook-driven response to a leaked key, with regulators' clocks.

Public API::

    IncidentService(engine, clock)       open / list / get / advance_status / complete_task /
                                         complete_obligation / update_facts / record / close
    Incident, Phase, Task, Obligation, TimelineEntry, Status, Severity
    RegulationCatalog, Facts             the regulations catalog and its engine
    actions.ACTIONS, actions.bind        the playbook action registry
"""

from __future__ import annotations

from keyguard.incident.model import (
    Incident,
    IncidentKey,
    ItemState,
    LocalText,
    Obligation,
    Phase,
    Severity,
    Status,
    Task,
    TimelineEntry,
)
from keyguard.incident.obligations import Facts, RegulationCatalog, default_catalog
from keyguard.incident.service import IncidentService

__all__ = [
    "Facts",
    "Incident",
    "IncidentKey",
    "IncidentService",
    "ItemState",
    "LocalText",
    "Obligation",
    "Phase",
    "RegulationCatalog",
    "Severity",
    "Status",
    "Task",
    "TimelineEntry",
    "default_catalog",
]
