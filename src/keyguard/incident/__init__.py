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


def open_leak_incident(
    ref: object, exposed_at: object, author: str, commit: str, root_cause: str, location: str
) -> str:
    """Open or update the incident of a key version the scanner found leaked.

    See keyguard.scan.managed; the work is done by keyguard.response.leaks.
    """
    from datetime import datetime

    from keyguard.response.leaks import scanner_opener

    assert isinstance(exposed_at, datetime)
    return scanner_opener(ref, exposed_at, author, commit, root_cause, location)
