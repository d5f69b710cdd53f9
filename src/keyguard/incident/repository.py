"""Query functions between the incident domain objects and their tables.

Every function takes an open :class:`~sqlalchemy.orm.Session`; the caller owns
the transaction (see :class:`keyguard.incident.service.IncidentService`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from keyguard.clock import as_utc, format_time, parse_time
from keyguard.errors import NotFoundError
from keyguard.incident.model import (
    Incident,
    IncidentKey,
    LocalText,
    Obligation,
    Phase,
    Severity,
    Status,
    Task,
    TimelineEntry,
)
from keyguard.incident.obligations import RegulationCatalog, due_basis
from keyguard.incident.playbook import required_tasks
from keyguard.store.incident_tables import (
    IncidentKeyRow,
    IncidentObligationRow,
    IncidentRow,
    IncidentTaskRow,
    IncidentTimelineRow,
)

utc = as_utc  # the repository's name for it


def _utc_opt(at: datetime | None) -> datetime | None:
    return None if at is None else utc(at)


def _text(doc: dict[str, Any]) -> LocalText:
    return LocalText(en=str(doc.get("en", "")), zh=str(doc.get("zh", "")))


def _times(doc: dict[str, Any]) -> dict[str, datetime]:
    return {k: parse_time(str(v)) for k, v in doc.items()}


def create(session: Session, incident: Incident) -> int:
    """Insert ``incident`` with its keys, tasks and obligations; return its new id."""
    now = incident.status_history.get(str(Status.OPEN), incident.detected_at)
    row = IncidentRow(
        title=incident.title,
        status=str(incident.status),
        severity=str(incident.severity),
        source=incident.source,
        playbook=incident.playbook,
        exposed_at=incident.exposed_at,
        detected_at=incident.detected_at,
        jurisdictions=list(incident.jurisdictions),
        data_classes=list(incident.data_classes),
        flags=list(incident.flags),
        determinations={k: format_time(v) for k, v in incident.determinations.items()},
        impact=dict(incident.impact),
        root_cause=incident.root_cause,
        status_history={k: format_time(v) for k, v in incident.status_history.items()},
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    incident.id = row.id
    session.add_all(IncidentKeyRow(incident_id=row.id, key_name=k.name, version=k.version) for k in incident.keys)
    position = 0
    for phase in incident.phases:
        for task in phase.tasks:
            session.add(
                IncidentTaskRow(
                    incident_id=row.id,
                    position=position,
                    phase=phase.name,
                    phase_due_at=phase.due_at,
                    phase_title={"en": phase.title.en, "zh": phase.title.zh},
                    task_id=task.id,
                    action=task.action,
                    owner=task.owner,
                    title={"en": task.title.en, "zh": task.title.zh},
                    due_at=task.due_at,
                    done_at=task.done_at,
                    done_by=task.done_by,
                    note=task.note,
                    evidence=dict(task.evidence),
                )
            )
            position += 1
    _save_obligations(session, row.id, incident.obligations)
    for entry in incident.timeline:
        add_timeline(session, row.id, entry)
    session.flush()
    return row.id


def _save_obligations(session: Session, incident_id: int, obligations: Sequence[Obligation]) -> None:
    existing = {
        r.regulation: r
        for r in session.scalars(select(IncidentObligationRow).where(IncidentObligationRow.incident_id == incident_id))
    }
    wanted = {o.regulation for o in obligations}
    for name, row in existing.items():
        if name not in wanted:
            session.delete(row)
    for ob in obligations:
        row = existing.get(ob.regulation) or IncidentObligationRow(incident_id=incident_id, regulation=ob.regulation)
        row.due_at = ob.due_at
        row.done_at = ob.done_at
        row.reference = ob.reference
        row.note = ob.note
        session.add(row)


def update(session: Session, incident: Incident) -> None:
    """Save the mutable state of ``incident``: status, facts, task and obligation progress."""
    row = session.get(IncidentRow, incident.id)
    if row is None:
        raise NotFoundError(f"no incident {incident.id}", hint="see keyguard incident list")
    row.status = str(incident.status)
    row.severity = str(incident.severity)
    row.title = incident.title
    row.flags = list(incident.flags)
    row.jurisdictions = list(incident.jurisdictions)
    row.data_classes = list(incident.data_classes)
    row.determinations = {k: format_time(v) for k, v in incident.determinations.items()}
    row.impact = dict(incident.impact)
    row.root_cause = incident.root_cause
    row.status_history = {k: format_time(v) for k, v in incident.status_history.items()}
    closed = incident.status_history.get(str(Status.CLOSED))
    row.closed_at = closed
    tasks = {t.id: t for t in incident.tasks}
    for trow in session.scalars(select(IncidentTaskRow).where(IncidentTaskRow.incident_id == incident.id)):
        task = tasks.get(trow.task_id)
        if task is not None:
            trow.done_at, trow.done_by, trow.note = task.done_at, task.done_by, task.note
            trow.evidence = dict(task.evidence)
    _save_obligations(session, incident.id, incident.obligations)
    session.flush()


def touch(session: Session, incident_id: int, at: datetime) -> None:
    """Record that the incident changed at ``at``."""
    row = session.get(IncidentRow, incident_id)
    if row is not None:
        row.updated_at = at


def add_timeline(session: Session, incident_id: int, entry: TimelineEntry) -> None:
    """Append one timeline entry."""
    session.add(
        IncidentTimelineRow(
            incident_id=incident_id,
            at=entry.at,
            kind=entry.kind,
            actor=entry.actor,
            message=entry.message,
            data=dict(entry.data),
        )
    )


def lock(session: Session, incident_id: int) -> None:
    """Lock the incident row for this transaction (PostgreSQL; SQLite holds the write lock)."""
    session.execute(select(IncidentRow.id).where(IncidentRow.id == incident_id).with_for_update())


def get(session: Session, incident_id: int, catalog: RegulationCatalog) -> Incident:
    """The incident ``incident_id`` with everything attached; NotFoundError when absent."""
    row = session.get(IncidentRow, incident_id)
    if row is None:
        raise NotFoundError(f"no incident {incident_id}", hint="see keyguard incident list")
    return _load(session, [row], catalog)[0]


def list_incidents(
    session: Session,
    catalog: RegulationCatalog,
    *,
    status: Status | None = None,
    key: str | None = None,
) -> list[Incident]:
    """Incidents, newest first, optionally only those with ``status`` or naming ``key``."""
    query = select(IncidentRow).order_by(IncidentRow.id.desc())
    if status is not None:
        query = query.where(IncidentRow.status == str(status))
    if key is not None:
        query = query.where(
            IncidentRow.id.in_(select(IncidentKeyRow.incident_id).where(IncidentKeyRow.key_name == key))
        )
    return _load(session, list(session.scalars(query)), catalog)


def delete_incident(session: Session, incident_id: int) -> None:
    """Remove an incident and everything attached (tests and drills only)."""
    for table in (IncidentTimelineRow, IncidentObligationRow, IncidentTaskRow, IncidentKeyRow):
        session.execute(delete(table).where(table.incident_id == incident_id))
    session.execute(delete(IncidentRow).where(IncidentRow.id == incident_id))


def _load(session: Session, rows: Sequence[IncidentRow], catalog: RegulationCatalog) -> list[Incident]:
    ids = [r.id for r in rows]
    if not ids:
        return []
    keys: dict[int, list[IncidentKey]] = defaultdict(list)
    for k in session.scalars(
        select(IncidentKeyRow).where(IncidentKeyRow.incident_id.in_(ids)).order_by(IncidentKeyRow.id)
    ):
        keys[k.incident_id].append(IncidentKey(k.key_name, k.version))
    phases: dict[int, dict[str, Phase]] = defaultdict(dict)
    required = {r.id: required_tasks(r.playbook) for r in rows}
    task_rows = select(IncidentTaskRow).where(IncidentTaskRow.incident_id.in_(ids)).order_by(IncidentTaskRow.position)
    for t in session.scalars(task_rows):
        phase = phases[t.incident_id].setdefault(
            t.phase, Phase(name=t.phase, title=_text(t.phase_title), due_at=utc(t.phase_due_at))
        )
        phase.tasks.append(
            Task(
                id=t.task_id,
                phase=t.phase,
                action=t.action,
                owner=t.owner,
                due_at=utc(t.due_at),
                title=_text(t.title),
                done_at=_utc_opt(t.done_at),
                done_by=t.done_by,
                note=t.note,
                evidence=dict(t.evidence or {}),
                required=required[t.incident_id].get(t.task_id, True),
            )
        )
    obligations: dict[int, list[Obligation]] = defaultdict(list)
    ob_rows = select(IncidentObligationRow).where(IncidentObligationRow.incident_id.in_(ids))
    for o in session.scalars(ob_rows.order_by(IncidentObligationRow.id)):
        spec = catalog.specs.get(o.regulation)
        title = LocalText(spec.title.en, spec.title.zh) if spec else LocalText(o.regulation, o.regulation)
        obligations[o.incident_id].append(
            Obligation(
                regulation=o.regulation,
                title=title,
                audience=LocalText(spec.audience.en, spec.audience.zh) if spec else LocalText("", ""),
                jurisdiction=spec.jurisdiction if spec else "",
                due_at=_utc_opt(o.due_at),
                deadline=LocalText(spec.deadline.en, spec.deadline.zh) if spec else LocalText("", ""),
                source=spec.source.url if spec else "",
                done_at=_utc_opt(o.done_at),
                reference=o.reference,
                note=o.note,
                due_basis=due_basis(spec) if spec else None,
            )
        )
    timeline: dict[int, list[TimelineEntry]] = defaultdict(list)
    tl_rows = select(IncidentTimelineRow).where(IncidentTimelineRow.incident_id.in_(ids))
    for e in session.scalars(tl_rows.order_by(IncidentTimelineRow.at, IncidentTimelineRow.id)):
        timeline[e.incident_id].append(
            TimelineEntry(at=utc(e.at), kind=e.kind, actor=e.actor, message=e.message, data=dict(e.data or {}))
        )
    far = datetime.max.replace(tzinfo=UTC)
    return [
        Incident(
            id=r.id,
            title=r.title,
            keys=keys[r.id],
            exposed_at=utc(r.exposed_at),
            detected_at=utc(r.detected_at),
            status=Status(r.status),
            severity=Severity(r.severity),
            source=r.source,
            playbook=r.playbook,
            jurisdictions=list(r.jurisdictions or []),
            data_classes=list(r.data_classes or []),
            flags=list(r.flags or []),
            determinations=_times(r.determinations or {}),
            impact=dict(r.impact or {}),
            root_cause=r.root_cause,
            status_history=_times(r.status_history or {}),
            phases=list(phases[r.id].values()),
            obligations=sorted(obligations[r.id], key=lambda o: (o.due_at or far, o.regulation)),
            timeline=timeline[r.id],
        )
        for r in rows
    ]
