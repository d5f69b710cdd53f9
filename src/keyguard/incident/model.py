"""The incident domain: statuses, phases, tasks, obligations and the timeline.

These are plain dataclasses with no storage or vault dependency; the service
(:mod:`keyguard.incident.service`) loads and saves them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from keyguard.clock import format_time
from keyguard.errors import ConflictError


class Status(StrEnum):
    """Incident status; it only moves forward (SPEC §1 timeline)."""

    OPEN = "open"
    CONTAINED = "contained"
    ASSESSED = "assessed"
    ROTATED = "rotated"
    RECOVERED = "recovered"
    CLOSED = "closed"

    @property
    def rank(self) -> int:
        """Position in the status machine (open = 0 … closed = 5)."""
        return list(Status).index(self)


def check_transition(current: Status, target: Status) -> None:
    """Raise :class:`ConflictError` unless ``target`` is after ``current``."""
    if target.rank <= current.rank:
        raise ConflictError(
            f"incident is {current}, cannot move to {target}",
            hint="status only moves forward: " + " → ".join(Status),
        )


class Severity(StrEnum):
    """Risk grade of an incident."""

    UNKNOWN = "unknown"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ItemState(StrEnum):
    """The display state of a task, phase or obligation at a given instant."""

    PENDING = "pending"
    DONE = "done"
    OVERDUE = "overdue"
    NOT_APPLICABLE = "not-applicable"


#: ``reference`` of an obligation closed by a "not applicable, because …" decision (reason in ``note``).
NOT_APPLICABLE = "not-applicable"


@dataclass(frozen=True)
class LocalText:
    """A text in English and Simplified Chinese."""

    en: str
    zh: str

    def get(self, lang: str) -> str:
        """The text in ``lang`` (``en`` or ``zh``)."""
        return self.zh if lang == "zh" else self.en


def _state(done_at: datetime | None, due_at: datetime | None, now: datetime) -> ItemState:
    if done_at is not None:
        return ItemState.DONE
    if due_at is not None and now > due_at:
        return ItemState.OVERDUE
    return ItemState.PENDING


@dataclass
class Task:
    """One checklist item of a phase; ``action`` names what keyguard runs (or ``manual``)."""

    id: str
    phase: str
    action: str
    owner: str
    due_at: datetime
    title: LocalText
    done_at: datetime | None = None
    done_by: str | None = None
    note: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    required: bool = True

    @property
    def is_automatic(self) -> bool:
        """True when keyguard itself performs the task."""
        return self.action != "manual"

    @property
    def skip_reason(self) -> str | None:
        """Why the task was skipped as not applicable (None when it was not skipped)."""
        reason = self.evidence.get(NOT_APPLICABLE)
        return str(reason) if reason is not None and self.done_at is not None else None

    def state(self, now: datetime) -> ItemState:
        """pending, done, overdue or not-applicable at ``now``."""
        if self.skip_reason is not None:
            return ItemState.NOT_APPLICABLE
        return _state(self.done_at, self.due_at, now)

    def is_late(self, now: datetime) -> bool:
        """True when a required task is overdue (an optional one is never late)."""
        return self.required and self.state(now) is ItemState.OVERDUE

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """JSON shape of the task."""
        doc: dict[str, Any] = {
            "id": self.id,
            "action": self.action,
            "owner": self.owner,
            "title": {"en": self.title.en, "zh": self.title.zh},
            "due": format_time(self.due_at),
            "done_at": format_time(self.done_at) if self.done_at else None,
            "done_by": self.done_by,
            "note": self.note,
            "evidence": self.evidence,
            "required": self.required,
            "not_applicable": self.skip_reason,
        }
        if now is not None:
            doc["status"] = str(self.state(now))
        return doc


@dataclass
class Phase:
    """A phase of the SLA timeline with its due time and tasks."""

    name: str
    title: LocalText
    due_at: datetime
    tasks: list[Task] = field(default_factory=list)

    @property
    def done_at(self) -> datetime | None:
        """When the last required task was done (or skipped), or None while one is open.

        Optional tasks never hold a phase open; a phase of optional tasks only is done
        when all of them are.
        """
        needed = [t for t in self.tasks if t.required] or self.tasks
        if not needed or any(t.done_at is None for t in needed):
            return None
        return max(t.done_at for t in needed if t.done_at is not None)

    def state(self, now: datetime) -> ItemState:
        """pending, done or overdue at ``now``."""
        return _state(self.done_at, self.due_at, now)

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """JSON shape of the phase (SPEC §5)."""
        done = self.done_at
        doc: dict[str, Any] = {
            "name": self.name,
            "title": {"en": self.title.en, "zh": self.title.zh},
            "due": format_time(self.due_at),
            "done_at": format_time(done) if done else None,
            "tasks": [t.to_dict(now) for t in self.tasks],
        }
        if now is not None:
            doc["status"] = str(self.state(now))
        return doc


@dataclass
class Obligation:
    """A notification duty of one regulation for this incident."""

    regulation: str
    title: LocalText
    audience: LocalText
    jurisdiction: str
    due_at: datetime | None
    deadline: LocalText
    source: str
    done_at: datetime | None = None
    reference: str = ""
    note: str = ""
    due_basis: LocalText | None = None  # where the due time comes from, when the law says "immediately"

    @property
    def not_applicable(self) -> str | None:
        """The reason of a "not applicable, because …" decision that closed the duty, else None."""
        return self.note if self.done_at is not None and self.reference == NOT_APPLICABLE else None

    def state(self, now: datetime) -> ItemState:
        """pending, done, overdue or not-applicable at ``now``; without a due time it is never overdue."""
        if self.not_applicable is not None:
            return ItemState.NOT_APPLICABLE
        return _state(self.done_at, self.due_at, now)

    def countdown(self, now: datetime) -> timedelta | None:
        """Time left until due (negative when overdue); None when done or no due time is known."""
        if self.done_at is not None or self.due_at is None:
            return None
        return self.due_at - now

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """JSON shape of the obligation (SPEC §5 plus details)."""
        doc: dict[str, Any] = {
            "regulation": self.regulation,
            "title": {"en": self.title.en, "zh": self.title.zh},
            "jurisdiction": self.jurisdiction,
            "audience": self.audience.en,
            "audience_zh": self.audience.zh,
            "due": format_time(self.due_at) if self.due_at else None,
            "deadline": {"en": self.deadline.en, "zh": self.deadline.zh},
            "done_at": format_time(self.done_at) if self.done_at else None,
            "reference": self.reference,
            "source": self.source,
            "due_basis": {"en": self.due_basis.en, "zh": self.due_basis.zh} if self.due_basis else None,
            "not_applicable": self.not_applicable,
        }
        if now is not None:
            doc["status"] = str(self.state(now))
            left = self.countdown(now)
            doc["countdown_seconds"] = int(left.total_seconds()) if left is not None else None
        return doc


@dataclass(frozen=True)
class TimelineEntry:
    """Something that happened during the incident, when, and who did it."""

    at: datetime
    kind: str
    actor: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON shape of the entry."""
        return {
            "at": format_time(self.at),
            "kind": self.kind,
            "actor": self.actor,
            "message": self.message,
            "data": self.data,
        }


@dataclass(frozen=True)
class IncidentKey:
    """A leaked key, and the version when known (None: every version)."""

    name: str
    version: int | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


@dataclass
class Incident:
    """A leaked-key incident: facts, status, SLA phases, obligations, timeline."""

    id: int
    title: str
    keys: list[IncidentKey]
    exposed_at: datetime
    detected_at: datetime
    status: Status
    severity: Severity
    source: str
    playbook: str
    jurisdictions: list[str] = field(default_factory=list)
    data_classes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    determinations: dict[str, datetime] = field(default_factory=dict)
    impact: dict[str, Any] = field(default_factory=dict)
    root_cause: str = ""
    status_history: dict[str, datetime] = field(default_factory=dict)
    phases: list[Phase] = field(default_factory=list)
    obligations: list[Obligation] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)

    @property
    def tasks(self) -> list[Task]:
        """Every task of every phase, in playbook order."""
        return [t for p in self.phases for t in p.tasks]

    def task(self, task_id: str) -> Task | None:
        """The task named ``task_id``, if any."""
        return next((t for t in self.tasks if t.id == task_id), None)

    @property
    def exposed_items(self) -> list[str]:
        """Names of the data items the assessment recorded as exposed (never shrinks)."""
        raw = self.impact.get("data_items")
        return [str(i["name"]) for i in raw if isinstance(i, dict) and i.get("name")] if isinstance(raw, list) else []

    @property
    def is_closed(self) -> bool:
        """True once the incident is closed."""
        return self.status is Status.CLOSED

    def attention(self, now: datetime) -> list[str]:
        """What needs a person now: overdue obligations and required tasks (empty when closed).

        The one rule of "late" that ``incident show``, ``respond`` and the dashboard share.
        """
        if self.is_closed:
            return []
        items = [
            f"obligation {o.regulation} overdue since {format_time(o.due_at)}"
            for o in self.obligations
            if o.due_at is not None and o.state(now) is ItemState.OVERDUE
        ]
        items += [f"task {t.id} overdue since {format_time(t.due_at)}" for t in self.tasks if t.is_late(now)]
        return items

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """The incident record of SPEC §5 (with status and countdowns when ``now`` is given)."""
        doc: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "keys": [{"name": k.name, "version": k.version} for k in self.keys],
            "exposed_at": format_time(self.exposed_at),
            "detected_at": format_time(self.detected_at),
            "status": str(self.status),
            "severity": str(self.severity),
            "source": self.source,
            "playbook": self.playbook,
            "jurisdictions": self.jurisdictions,
            "data_classes": self.data_classes,
            "flags": self.flags,
            "determinations": {k: format_time(v) for k, v in self.determinations.items()},
            "status_history": {k: format_time(v) for k, v in self.status_history.items()},
            "phases": [p.to_dict(now) for p in self.phases],
            "obligations": [o.to_dict(now) for o in self.obligations],
            "impact": self.impact,
            "exposed_items": self.exposed_items,
            "root_cause": self.root_cause,
            "timeline": [e.to_dict() for e in self.timeline],
        }
        if now is not None:
            doc["attention"] = self.attention(now)
        return doc
