"""IncidentService: open, advance, complete tasks, track obligations, close.

The service owns the transactions; the vault-facing steps (contain, assess,
rotate, rollout) call :meth:`IncidentService.complete_task`,
:meth:`IncidentService.advance_status`, :meth:`IncidentService.update_facts` and
:meth:`IncidentService.record` with their evidence.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from keyguard.clock import Clock, SystemClock, format_time
from keyguard.errors import ConflictError, KeyguardError, NotFoundError, UsageError
from keyguard.incident import actions
from keyguard.incident import repository as repo
from keyguard.incident.model import (
    NOT_APPLICABLE,
    Incident,
    IncidentKey,
    Obligation,
    Severity,
    Status,
    Task,
    TimelineEntry,
    check_transition,
)
from keyguard.incident.obligations import Facts, RegulationCatalog, default_catalog
from keyguard.incident.playbook import DEFAULT_PLAYBOOK, load_playbook, schedule
from keyguard.store.db import write_tx

DATA_CLASSES = ("pii", "payment", "credentials", "secrets", "other")
_KEY_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_CLOCK_SKEW = timedelta(minutes=5)


def _codes(values: Iterable[str], what: str) -> list[str]:
    out: list[str] = []
    for raw in values:
        for value in (v.strip().lower() for v in raw.split(",")):
            if not value:
                continue
            if not _CODE.match(value):
                raise UsageError(
                    f"invalid {what} {value!r}",
                    hint="use lower-case codes like eu, us-ca, high-risk",
                )
            if value not in out:
                out.append(value)
    return out


class IncidentService:
    """Incidents on one database, with an injected clock and regulation catalog."""

    def __init__(self, engine: Engine, clock: Clock | None = None, catalog: RegulationCatalog | None = None) -> None:
        self.engine = engine
        self.clock: Clock = clock or SystemClock()
        self.catalog = catalog or default_catalog()

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self.engine) as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with write_tx(self.engine) as conn, Session(bind=conn) as session:
            yield session
            session.flush()

    def _change(self, incident_id: int) -> _Change:
        return _Change(self, incident_id)

    # -- queries ------------------------------------------------------------------------------

    def get(self, incident_id: int) -> Incident:
        """The incident ``incident_id`` (NotFoundError when absent)."""
        with self._read() as session:
            return repo.get(session, incident_id, self.catalog)

    def list(self, status: Status | None = None, key: str | None = None) -> builtins.list[Incident]:
        """Incidents, newest first; optionally filtered by status or key name."""
        with self._read() as session:
            return repo.list_incidents(session, self.catalog, status=status, key=key)

    def timeline(self, incident_id: int) -> builtins.list[TimelineEntry]:
        """The incident's timeline, oldest first."""
        return self.get(incident_id).timeline

    def obligations(self, incident_id: int) -> builtins.list[Obligation]:
        """The incident's notification duties with due times, soonest first."""
        return self.get(incident_id).obligations

    def attention(self, incident_id: int) -> builtins.list[str]:
        """What needs a person now (overdue obligations and tasks)."""
        return self.get(incident_id).attention(self.clock.now())

    # -- commands -----------------------------------------------------------------------------

    def open(
        self,
        keys: Sequence[tuple[str, int | None]],
        exposed_at: datetime,
        detected_at: datetime | None = None,
        source: str = "",
        jurisdictions: Iterable[str] = (),
        data_classes: Iterable[str] = (),
        flags: Iterable[str] = (),
        *,
        title: str | None = None,
        playbook: str = DEFAULT_PLAYBOOK,
        actor: str = "keyguard",
    ) -> Incident:
        """Open an incident for leaked ``keys``: schedule the playbook, work out the obligations."""
        now = self.clock.now()
        detected = detected_at or now
        if not keys:
            raise UsageError("an incident needs at least one key", hint="pass --key NAME[@VERSION]")
        parsed = [IncidentKey(name, version) for name, version in keys]
        for k in parsed:
            if not _KEY_NAME.match(k.name):
                raise UsageError(f"invalid key name {k.name!r}", hint="names match [a-z0-9][a-z0-9._-]{0,63}")
            if k.version is not None and k.version < 1:
                raise UsageError(f"invalid version {k.version} of {k.name}", hint="versions start at 1")
        if exposed_at > detected:
            raise UsageError("the key cannot be exposed after it was detected", hint="check --exposed-at")
        if detected > now + _CLOCK_SKEW:
            raise UsageError("detection time is in the future", hint="check --detected-at")
        classes = _codes(data_classes, "data class")
        unknown = [c for c in classes if c not in DATA_CLASSES]
        if unknown:
            raise UsageError(f"unknown data class {unknown[0]!r}", hint="one of " + ", ".join(DATA_CLASSES))
        spec = load_playbook(playbook)
        incident = Incident(
            id=0,
            title=title or f"Leaked key {', '.join(str(k) for k in parsed)}",
            keys=parsed,
            exposed_at=exposed_at,
            detected_at=detected,
            status=Status.OPEN,
            severity=Severity.UNKNOWN,
            source=source,
            playbook=spec.id,
            jurisdictions=_codes(jurisdictions, "jurisdiction"),
            data_classes=classes,
            flags=self._flags(flags),
            status_history={str(Status.OPEN): now},
            phases=schedule(spec, detected),
        )
        incident.obligations = self.catalog.obligations(Facts.of(incident))
        incident.timeline = [
            TimelineEntry(detected, "detected", actor, f"leak detected ({source or 'no source given'})"),
            TimelineEntry(
                now,
                "opened",
                actor,
                f"incident opened with playbook {spec.id}; {len(incident.obligations)} obligation(s)",
                {"keys": [str(k) for k in parsed], "exposed_at": format_time(exposed_at)},
            ),
        ]
        with self._write() as session:
            repo.create(session, incident)
        return incident

    def advance_status(
        self,
        incident_id: int,
        status: Status | str,
        evidence: Mapping[str, Any] | None = None,
        *,
        actor: str = "keyguard",
    ) -> Incident:
        """Move the incident forward to ``status`` (never backwards), timestamped, with evidence."""
        target = Status(status)
        if target is Status.CLOSED:
            return self.close(incident_id, actor=actor, force=True, evidence=evidence)
        with self._change(incident_id) as (session, incident, now):
            check_transition(incident.status, target)
            incident.status = target
            incident.status_history[str(target)] = now
            repo.add_timeline(
                session,
                incident_id,
                TimelineEntry(now, "status", actor, f"status → {target}", dict(evidence or {})),
            )
        return incident

    def complete_task(
        self,
        incident_id: int,
        task_id: str,
        note: str = "",
        evidence: Mapping[str, Any] | None = None,
        by: str = "keyguard",
    ) -> Incident:
        """Mark a playbook task done by ``by`` with a note and evidence."""
        with self._change(incident_id) as (session, incident, now):
            task = _open_task(incident, incident_id, task_id)
            task.done_at, task.done_by, task.note = now, by, note
            task.evidence = dict(evidence or {})
            late = " (late)" if now > task.due_at else ""
            repo.add_timeline(
                session,
                incident_id,
                TimelineEntry(
                    now,
                    "task",
                    by,
                    f"task {task_id} done{late}: {note or task.title.en}",
                    dict(evidence or {}),
                ),
            )
        return incident

    def skip_task(self, incident_id: int, task_id: str, reason: str, by: str = "operator") -> Incident:
        """Close a task as not applicable, with the reason (it then never makes its phase late)."""
        if not reason.strip():
            raise UsageError("a skipped task needs a reason", hint="--reason 'why it does not apply'")
        with self._change(incident_id) as (session, incident, now):
            task = _open_task(incident, incident_id, task_id)
            task.done_at, task.done_by, task.note = now, by, reason
            task.evidence = {NOT_APPLICABLE: reason}
            repo.add_timeline(
                session,
                incident_id,
                TimelineEntry(now, "task", by, f"task {task_id} not applicable: {reason}", {NOT_APPLICABLE: reason}),
            )
        return incident

    def waive_obligation(self, incident_id: int, regulation: str, reason: str, *, by: str = "operator") -> Incident:
        """Close a duty by a "not applicable, because …" decision (kept on the record with its reason)."""
        if not reason.strip():
            raise UsageError("a not-applicable decision needs a reason", hint='--not-applicable "because …"')
        with self._change(incident_id) as (session, incident, now):
            ob = next((o for o in incident.obligations if o.regulation == regulation), None)
            if ob is None:
                raise NotFoundError(f"incident {incident_id} has no obligation {regulation!r}")
            if ob.done_at is not None:
                raise ConflictError(f"obligation {regulation} is already done")
            ob.done_at, ob.reference, ob.note = now, NOT_APPLICABLE, reason
            incident.obligations = self._recompute(incident)
            repo.add_timeline(
                session,
                incident_id,
                TimelineEntry(now, "notified", by, f"{regulation} not applicable: {reason}", {NOT_APPLICABLE: reason}),
            )
        return incident

    def complete_obligation(
        self, incident_id: int, regulation: str, reference: str = "", *, by: str = "keyguard"
    ) -> Incident:
        """Record that the notice required by ``regulation`` was submitted (with its reference)."""
        with self._change(incident_id) as (session, incident, now):
            ob = next((o for o in incident.obligations if o.regulation == regulation), None)
            if ob is None:
                raise NotFoundError(f"incident {incident_id} has no obligation {regulation!r}")
            if ob.done_at is not None:
                raise ConflictError(f"obligation {regulation} is already done")
            ob.done_at, ob.reference = now, reference
            incident.obligations = self._recompute(incident)
            repo.add_timeline(
                session,
                incident_id,
                TimelineEntry(now, "notified", by, f"{regulation} notice submitted", {"reference": reference}),
            )
        return incident

    def update_facts(
        self,
        incident_id: int,
        *,
        severity: Severity | str | None = None,
        impact: Mapping[str, Any] | None = None,
        root_cause: str | None = None,
        add_flags: Iterable[str] = (),
        add_jurisdictions: Iterable[str] = (),
        add_data_classes: Iterable[str] = (),
        determinations: Mapping[str, datetime] | None = None,
        actor: str = "keyguard",
    ) -> Incident:
        """Update what is known (severity, impact, flags, determinations); obligations follow."""
        with self._change(incident_id) as (session, incident, now):
            changed: dict[str, Any] = {}
            if severity is not None:
                incident.severity = Severity(severity)
                changed["severity"] = str(incident.severity)
            if impact is not None:
                incident.impact = {**incident.impact, **impact}
                changed["impact"] = sorted(impact)
            if root_cause is not None:
                incident.root_cause = root_cause
                changed["root_cause"] = root_cause
            self._flags(add_flags)
            unknown = sorted(set(determinations or {}) - self.catalog.known_determinations())
            if unknown:
                raise UsageError(
                    f"unknown determination {unknown[0]!r}",
                    hint="known: " + ", ".join(sorted(self.catalog.known_determinations())),
                )
            for name, values, what in (
                ("flags", add_flags, "flag"),
                ("jurisdictions", add_jurisdictions, "jurisdiction"),
                ("data_classes", add_data_classes, "data class"),
            ):
                current: builtins.list[str] = getattr(incident, name)
                new = [v for v in _codes(values, what) if v not in current]
                if name == "data_classes" and any(v not in DATA_CLASSES for v in new):
                    raise UsageError("unknown data class", hint="one of " + ", ".join(DATA_CLASSES))
                if new:
                    current.extend(new)
                    changed[name] = new
            for name, at in (determinations or {}).items():
                incident.determinations[name] = at
                changed.setdefault("determinations", {})[name] = format_time(at)
            incident.obligations = self._recompute(incident)
            repo.add_timeline(session, incident_id, TimelineEntry(now, "facts", actor, "facts updated", changed))
        return incident

    def record(
        self,
        incident_id: int,
        kind: str,
        message: str,
        data: Mapping[str, Any] | None = None,
        *,
        actor: str = "keyguard",
    ) -> TimelineEntry:
        """Append an entry to the timeline (alerts, evidence, notes)."""
        with self._change(incident_id) as (session, _incident, now):
            entry = TimelineEntry(now, kind, actor, message, dict(data or {}))
            repo.add_timeline(session, incident_id, entry)
        return entry

    def close(
        self,
        incident_id: int,
        root_cause: str | None = None,
        note: str = "",
        *,
        actor: str = "keyguard",
        force: bool = False,
        evidence: Mapping[str, Any] | None = None,
    ) -> Incident:
        """Close the incident; before ``recovered`` only with ``force`` (e.g. a false positive)."""
        with self._change(incident_id) as (session, incident, now):
            check_transition(incident.status, Status.CLOSED)
            if incident.status is not Status.RECOVERED and not force:
                raise ConflictError(
                    f"incident {incident_id} is {incident.status}, not recovered",
                    hint="finish the playbook or pass --force with a note",
                )
            if root_cause is not None:
                incident.root_cause = root_cause
            incident.status = Status.CLOSED
            incident.status_history[str(Status.CLOSED)] = now
            data = {"note": note, **dict(evidence or {})}
            open_tasks = [t.id for t in incident.tasks if t.done_at is None]
            if open_tasks:
                data["open_tasks"] = open_tasks
            repo.add_timeline(session, incident_id, TimelineEntry(now, "status", actor, "status → closed", data))
        return incident

    def run_actions(self, incident_id: int, only: Iterable[str] | None = None) -> builtins.list[ActionResult]:
        """Perform the pending automatic tasks that have a bound handler, in playbook order.

        ``only`` limits the run to these action names (``{"vault.compromise"}``). A handler
        that raises a KeyguardError leaves its task open and is recorded on the timeline;
        the run goes on with the next task.
        """
        wanted = set(only) if only is not None else None
        results: builtins.list[ActionResult] = []
        for task in self.get(incident_id).tasks:
            if task.done_at is not None or not task.is_automatic:
                continue
            if wanted is not None and task.action not in wanted:
                continue
            handler = actions.handler(task.action)
            if handler is None:
                continue
            incident = self.get(incident_id)
            try:
                evidence = handler(actions.ActionContext(self, incident, task))
            except KeyguardError as exc:
                self.record(
                    incident_id,
                    "task-failed",
                    f"task {task.id} failed: {exc.message}",
                    {"action": task.action, "hint": exc.hint},
                )
                results.append(ActionResult(task.id, task.action, ok=False, error=exc.message))
                continue
            self.complete_task(incident_id, task.id, evidence=evidence, by="keyguard")
            results.append(ActionResult(task.id, task.action, ok=True, evidence=evidence))
        return results

    def _flags(self, flags: Iterable[str]) -> builtins.list[str]:
        values = _codes(flags, "flag")
        known = self.catalog.known_flags()
        unknown = [f for f in values if f not in known]
        if unknown:
            raise UsageError(f"unknown flag {unknown[0]!r}", hint="known: " + ", ".join(sorted(known)))
        return values

    def _recompute(self, incident: Incident) -> builtins.list[Obligation]:
        fresh = self.catalog.obligations(Facts.of(incident))
        old = {o.regulation: o for o in incident.obligations}
        for ob in fresh:
            prev = old.pop(ob.regulation, None)
            if prev is not None:
                ob.done_at, ob.reference, ob.note = prev.done_at, prev.reference, prev.note
        # A duty already fulfilled stays on record even if the facts no longer require it.
        fresh += [o for o in old.values() if o.done_at is not None]
        return fresh


@dataclass(frozen=True)
class ActionResult:
    """The outcome of one automatic task run by :meth:`IncidentService.run_actions`."""

    task: str
    action: str
    ok: bool
    evidence: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def _comply_obligations(ctx: actions.ActionContext) -> dict[str, Any]:
    """Built-in handler of ``comply.obligations``: the duties and their due times as evidence."""
    now = ctx.service.clock.now()
    return {
        "obligations": [
            {
                "regulation": o.regulation,
                "due": format_time(o.due_at) if o.due_at else None,
                "status": str(o.state(now)),
            }
            for o in ctx.incident.obligations
        ]
    }


actions.bind("comply.obligations", _comply_obligations)


class _Change:
    """A write transaction around one incident: load it, let the caller change it, save it."""

    def __init__(self, service: IncidentService, incident_id: int) -> None:
        self.service = service
        self.incident_id = incident_id
        self._cm: Any = None

    def __enter__(self) -> tuple[Session, Incident, datetime]:
        self._cm = self.service._write()
        session: Session = self._cm.__enter__()
        try:
            repo.lock(session, self.incident_id)
            incident = repo.get(session, self.incident_id, self.service.catalog)
        except BaseException as exc:
            self._cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        if incident.is_closed:
            self._cm.__exit__(None, None, None)
            raise ConflictError(f"incident {self.incident_id} is closed", hint="open a new incident")
        self._session, self._incident = session, incident
        self._now = self.service.clock.now()
        return session, incident, self._now

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool | None:
        if exc is None:
            repo.update(self._session, self._incident)
            repo.touch(self._session, self._incident.id, self._now)
        result: bool | None = self._cm.__exit__(exc_type, exc, tb)
        return result


def _open_task(incident: Incident, incident_id: int, task_id: str) -> Task:
    """The task ``task_id`` of ``incident``, still to be done; NotFound / Conflict otherwise."""
    task = incident.task(task_id)
    if task is None:
        known = ", ".join(t.id for t in incident.tasks)
        raise NotFoundError(f"incident {incident_id} has no task {task_id!r}", hint=f"tasks: {known}")
    if task.done_at is not None:
        raise ConflictError(f"task {task_id} is already done", hint=f"done at {format_time(task.done_at)}")
    return task
