"""The leaked-key playbook on a resource held elsewhere (SPEC §7): ``respond --resource REF``.

The incident is the ordinary one (same playbook, SLA clocks and obligations); its key
is the reference's key name (:func:`~keyguard.response.resource_data.resource_key`) and
``impact["resource"]`` holds the reference. Each step goes through the resource's
:class:`~keyguard.connectors.base.Adapter` and lands in keyguard's audit log with the
reference (:func:`~keyguard.connectors.audited.audit_step`); a step the adapter does not
perform becomes a manual task carrying the adapter's instructions (for
``external/RULE/FINGERPRINT`` every step, from ``revoke_steps.toml``).

Values the later steps need are sealed by the root of trust
(:class:`~keyguard.connectors.sealed.SealedStore`, connector ``CONNECTOR``): the leaked
value (``leaked/KIND/ID``, for prove-dead and delivery) and the rotation with its new
credential (``rotation/KIND/ID``), so ``incident rollout`` can run in another process and a
rerun after ``kill -9`` never makes a second credential.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from keyguard.assess.engine import assess
from keyguard.audit.log import AuditLog, EventDraft
from keyguard.clock import format_time
from keyguard.connectors.audited import audit_key, audit_step
from keyguard.connectors.base import Adapter, Rotation, Step
from keyguard.connectors.deliver import deliver_to_secrets
from keyguard.connectors.errors import UnknownReferenceError
from keyguard.connectors.external import ExternalCredential
from keyguard.connectors.refs import Ref, parse_ref
from keyguard.connectors.registry import Connector, resolve
from keyguard.connectors.sealed import SealedStore
from keyguard.connectors.secret import Secret
from keyguard.errors import NotFoundError, UsageError
from keyguard.incident.model import Incident, Status
from keyguard.incident.service import IncidentService
from keyguard.response import resource_data as data
from keyguard.store.db import write_tx
from keyguard.store.incident_tables import IncidentTaskRow
from keyguard.vault.principal import Principal
from keyguard.vault.secrets import SecretStore
from keyguard.vault.service import Vault

T = TypeVar("T")
RESOURCE = "resource"
ROTATION_KIND = "connector-rotation"
#: The playbook task each step completes (the leaked-key playbook's actions).
TASK_OF: dict[Step, str] = {
    Step.CONTAIN: "vault.compromise",
    Step.PROVE_DEAD: "vault.verify-dead",
    Step.USAGE_SINCE: "assess.run",
    Step.ROTATE: "vault.rotate",
    Step.CONSUMERS_SWITCHED: "rollout.check",
}
PHASE_OF: dict[Step, str] = {
    Step.CONTAIN: "contain", Step.PROVE_DEAD: "contain", Step.USAGE_SINCE: "assess", Step.ROTATE: "assess",
    Step.DELIVER: "recover", Step.CONSUMERS_SWITCHED: "recover", Step.RETIRE: "recover",
}


def leaked_field(ref: Ref) -> str:
    """The sealed-store field of the leaked value of ``ref``."""
    return f"leaked/{ref.kind}/{ref.id}"


def rotation_field(ref: Ref) -> str:
    """The sealed-store field of the rotation of ``ref``."""
    return f"rotation/{ref.kind}/{ref.id}"


def incident_ref(incident: Incident) -> Ref:
    """The resource an incident is about (UsageError for an incident on keyguard's own keys)."""
    text = incident.impact.get(RESOURCE)
    if not isinstance(text, str):
        raise UsageError(f"incident {incident.id} is not about a connector resource",
                         hint="use the command without --resource for keyguard's own keys")
    return parse_ref(text)


def find_resource_incident(incidents: IncidentService, ref: Ref) -> Incident | None:
    """The incident not yet closed on ``ref``, if any."""
    for incident in incidents.list(key=data.resource_key(ref)):
        if incident.status is not Status.CLOSED and incident.impact.get(RESOURCE) == str(ref):
            return incident
    return None


@dataclass
class ResourceResponder:
    """Runs the playbook steps on connector resources, audited, recorded on the incident."""

    incidents: IncidentService
    audit: AuditLog
    actor: str
    engine: Engine
    connectors: Mapping[str, Connector]
    store: SealedStore | None
    state_dir: Path
    on_step: Callable[[str], None] = field(default=lambda _m: None)
    #: The vault and caller that write ``secret:NAME`` delivery targets (none: secrets refused).
    vault: Vault | None = None
    principal: Principal | None = None

    # ------------------------------------------------------------------ plumbing
    def adapter(self, ref: Ref) -> Adapter:
        """The adapter acting on ``ref`` (the manual-only one for ``external/…``)."""
        if ref.is_external:
            return ExternalCredential(ref.kind)
        return resolve(ref, self.connectors)[1]

    def _audit_manual(self, ref: Ref, step: Step) -> None:
        self.audit.append(EventDraft(actor=self.actor, op=f"connector.{step.value}", result="ok",
                                     key=audit_key(ref), reason=f"{ref}: manual task ({step.value})"))

    def _step(self, incident: Incident, ref: Ref, adapter: Adapter, step: Step, run: Callable[[], T]) -> T | None:
        """Run ``step`` audited, or make it a manual task when the adapter does not perform it."""
        if not adapter.supports(step):
            self.manual(incident, ref, step, adapter.instructions(step))
            return None
        self.on_step(f"{step.value} {ref} …")
        return audit_step(self.audit, actor=self.actor, ref=ref, step=step, run=run)

    def manual(self, incident: Incident, ref: Ref, step: Step, instructions: str) -> None:
        """A manual task for ``step`` with the instructions; the playbook task it replaces is skipped."""
        task_id = f"manual-{step.value.replace('_', '-')}"
        current = self.incidents.get(incident.id)
        if current.task(task_id) is not None:
            return
        self._audit_manual(ref, step)
        phase = next((p for p in current.phases if p.name == PHASE_OF.get(step, "recover")), current.phases[-1])
        title = f"{step.value.replace('_', ' ')} {ref} by hand: {instructions}"[:1000]
        with write_tx(self.incidents.engine) as conn, Session(bind=conn) as session:
            last = session.scalar(select(func.max(IncidentTaskRow.position)).where(
                IncidentTaskRow.incident_id == incident.id)) or 0
            session.add(IncidentTaskRow(
                incident_id=incident.id, position=int(last) + 1, phase=phase.name, phase_due_at=phase.due_at,
                phase_title={"en": phase.title.en, "zh": phase.title.zh}, task_id=task_id, action="manual",
                owner="operator", title={"en": title, "zh": title}, due_at=phase.due_at, note="", evidence={}))
            session.flush()
        self.incidents.record(incident.id, "manual", f"{step.value} is manual for {ref}",
                              {"step": step.value, "instructions": instructions}, actor=self.actor)
        action = TASK_OF.get(step)
        if action is not None:
            self._skip(incident.id, action, f"manual for {ref}: see task {task_id}")

    def _skip(self, incident_id: int, action: str, reason: str) -> None:
        for task in self.incidents.get(incident_id).tasks:
            if task.action == action and task.done_at is None:
                self.incidents.skip_task(incident_id, task.id, reason, by=self.actor)

    def complete(self, incident_id: int, action: str, note: str, evidence: dict[str, Any]) -> None:
        for task in self.incidents.get(incident_id).tasks:
            if task.action == action and task.done_at is None:
                self.incidents.complete_task(incident_id, task.id, note, evidence, by=self.actor)

    def _advance(self, incident_id: int, status: Status, evidence: dict[str, Any]) -> None:
        if self.incidents.get(incident_id).status.rank < status.rank:
            self.incidents.advance_status(incident_id, status, evidence, actor=self.actor)

    def leaked(self, ref: Ref) -> Secret | None:
        """The sealed leaked value of ``ref``, when the scanner (or an operator) stored one."""
        return self.store.lookup(ref.connector, leaked_field(ref)) if self.store is not None else None

    def checkpoint(self, ref: Ref, step: str) -> Path:
        """Where the resumable state of ``step`` on ``ref`` lives (never a credential)."""
        digest = hashlib.sha256(str(ref).encode()).hexdigest()[:24]
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.state_dir / f"{step}-{digest}.json"

    # ------------------------------------------------------------------ incidents
    def open(self, ref: Ref, exposed_at: datetime, *, detected_at: datetime | None = None, source: str = "",
             jurisdictions: Sequence[str] = (), flags: Sequence[str] = (), leaked: Secret | None = None,
             evidence: Mapping[str, Any] | None = None) -> Incident:
        """Open (or find the open) incident on ``ref``; the resource must exist where a connector reaches it."""
        if not ref.is_external:
            self.adapter(ref)  # unknown connector or kind: one line before anything is recorded
        if leaked is not None and self.store is not None and not ref.is_external:
            self.store.put(ref.connector, leaked_field(ref), leaked)
        existing = find_resource_incident(self.incidents, ref)
        if existing is not None:
            if evidence:
                self.incidents.record(existing.id, "trace", f"leak of {ref} also found", dict(evidence),
                                      actor=self.actor)
            return existing
        incident = self.incidents.open([(data.resource_key(ref), None)], exposed_at, detected_at,
                                       source or f"leak of {ref}", jurisdictions, ("credentials",), flags,
                                       title=f"Leaked credential {ref}", actor=self.actor)
        self.incidents.update_facts(incident.id, impact={RESOURCE: str(ref)}, actor=self.actor)
        self._skip(incident.id, "clients.suspend", f"{ref} is held elsewhere: contain cuts its sessions there")
        self._skip(incident.id, "monitor.watch", f"{ref} is held elsewhere: its own system refuses the old value")
        if evidence:
            self.incidents.record(incident.id, "trace", f"leak of {ref} traced", dict(evidence), actor=self.actor)
            self.complete(incident.id, "scan.trace", f"traced to {evidence.get('location', '?')}", dict(evidence))
        self.audit.append(EventDraft(actor=self.actor, op="connector.incident", result="ok", key=audit_key(ref),
                                     reason=f"{ref}: incident {incident.id} opened"))
        if ref.is_external:  # nothing keyguard can do there: every step is a task with the provider's steps
            adapter = self.adapter(ref)
            for step in (Step.CONTAIN, Step.PROVE_DEAD, Step.USAGE_SINCE, Step.ROTATE, Step.DELIVER,
                         Step.CONSUMERS_SWITCHED, Step.RETIRE):
                self.manual(incident, ref, step, adapter.instructions(step))
        self.on_step(f"opened incident {incident.id} for {ref}")
        return self.incidents.get(incident.id)

    # ------------------------------------------------------------------ steps
    def contain(self, incident_id: int) -> dict[str, Any]:
        """Contain the resource, then prove the leaked value dead (both audited, both on the incident)."""
        incident = self.incidents.get(incident_id)
        ref = incident_ref(incident)
        adapter = self.adapter(ref)
        out: dict[str, Any] = {"resource": str(ref)}
        if self._done(incident, TASK_OF[Step.CONTAIN]) and self._done(incident, TASK_OF[Step.PROVE_DEAD]):
            return out | {"resumed": True}  # contained and proven before: a rerun must not contain again
        outcome = None
        if not self._done(incident, TASK_OF[Step.CONTAIN]):
            outcome = self._step(incident, ref, adapter, Step.CONTAIN, lambda: adapter.contain(ref))
        if outcome is not None:
            out["contain"] = list(outcome.actions)
            self.complete(incident_id, TASK_OF[Step.CONTAIN], "; ".join(outcome.actions),
                           {"resource": str(ref), "actions": list(outcome.actions), "at": format_time(outcome.at)})
        leaked = self.leaked(ref)
        samples = [c for _, c in data.registered_ciphertexts(self.engine, ref)][:3]
        proof = self._step(incident, ref, adapter, Step.PROVE_DEAD, lambda: adapter.prove_dead(ref, leaked, samples))
        if proof is not None:
            out["proof"] = {"is_dead": proof.is_dead, "evidence": list(proof.evidence)}
            if proof.is_dead:
                self.complete(incident_id, TASK_OF[Step.PROVE_DEAD], "the system refuses the leaked value",
                               {"resource": str(ref), "evidence": list(proof.evidence)})
            else:
                self.incidents.record(incident_id, "attention", f"{ref} not proven dead",
                                      {"evidence": list(proof.evidence)}, actor=self.actor)
        if outcome is not None or self._done(self.incidents.get(incident_id), TASK_OF[Step.CONTAIN], skipped=False):
            self._advance(incident_id, Status.CONTAINED, out)
        return out

    @staticmethod
    def _done(incident: Incident, action: str, *, skipped: bool = True) -> bool:
        """True when the playbook task of ``action`` is done (or, with ``skipped``, closed as manual)."""
        tasks = [t for t in incident.tasks if t.action == action]
        return bool(tasks) and all(t.done_at is not None and (skipped or t.skip_reason is None) for t in tasks)

    def assess(self, incident_id: int, baseline: timedelta = timedelta(days=30)) -> dict[str, Any]:
        """Import the system's own usage records, grade them with the existing assessment, record the risk."""
        incident = self.incidents.get(incident_id)
        ref = incident_ref(incident)
        adapter = self.adapter(ref)
        key = data.resource_key(ref)
        since = incident.exposed_at - baseline
        records = self._step(incident, ref, adapter, Step.USAGE_SINCE, lambda: adapter.usage_since(ref, since))
        if records is None:
            return {"resource": str(ref), "manual": True}
        counts = data.import_usage(self.engine, records, key)
        result = assess(self.engine, key, incident.exposed_at, now=self.incidents.clock.now(),
                        baseline=baseline, detected_at=incident.detected_at)
        impact: dict[str, Any] = {"grade": result.grade, "assessments": [result.to_dict()],
                                  "factors": [f.to_dict() for f in result.factors], "usage": counts}
        radius = getattr(adapter, "blast_radius", None)
        if callable(radius):
            impact["blast_radius"] = radius(ref)
        self.incidents.update_facts(incident_id, severity=result.grade, impact=impact,
                                    add_flags=["high-risk"] if result.grade == "high" else [], actor=self.actor)
        self.complete(incident_id, TASK_OF[Step.USAGE_SINCE],
                       f"risk {result.grade}: {result.events_after_exposure} event(s) since the exposure",
                       {"grade": result.grade, "events_after_exposure": result.events_after_exposure, **counts})
        self._advance(incident_id, Status.ASSESSED, {"grade": result.grade})
        return {"resource": str(ref), "grade": result.grade, "events_after_exposure": result.events_after_exposure,
                "usage": counts, "assessment": result.to_dict()}

    def rotation(self, ref: Ref) -> Rotation | None:
        """The rotation of ``ref`` made earlier (sealed), or None."""
        if self.store is None:
            return None
        sealed = self.store.lookup(ref.connector, rotation_field(ref))
        if sealed is None:
            return None
        doc = json.loads(sealed.reveal())
        secret = doc.get("new_secret")
        return Rotation(ref, parse_ref(doc["new_ref"]), datetime.fromisoformat(doc["at"]),
                        Secret(secret) if secret else None, (), dict(doc.get("detail", {})))

    def rotate(self, incident_id: int) -> dict[str, Any]:
        """A new credential or key version, once; registered ciphertexts re-encrypted (resumable after kill -9)."""
        incident = self.incidents.get(incident_id)
        ref = incident_ref(incident)
        adapter = self.adapter(ref)
        done = self.rotation(ref)
        if done is not None:
            return {"resource": str(ref), "new": str(done.new_ref), "reused": True}
        cp = self.checkpoint(ref, "rotate")
        items = data.registered_ciphertexts(self.engine, ref)
        made = self._step(incident, ref, adapter, Step.ROTATE,
                          lambda: adapter.rotate(ref, ciphertexts=[c for _, c in items], checkpoint=cp))
        if made is None:
            return {"resource": str(ref), "manual": True}
        rewrapped = data.store_rewrapped(self.engine, ref, made.new_ref, made.rewrapped, self.incidents.clock.now())
        if self.store is not None:
            doc = {"new_ref": str(made.new_ref), "at": made.at.isoformat(), "detail": made.detail,
                   "new_secret": made.new_secret.reveal() if made.new_secret is not None else None}
            self.store.put(ref.connector, rotation_field(ref), Secret(json.dumps(doc)))
        evidence = {"resource": str(ref), "new": str(made.new_ref), "at": format_time(made.at),
                    "rewrapped": rewrapped, "detail": made.detail}
        self.incidents.record(incident_id, ROTATION_KIND, f"{ref} rotated to {made.new_ref}", evidence,
                              actor=self.actor)
        for suffix in ("", ".log"):
            cp.with_name(cp.name + suffix).unlink(missing_ok=True)
        self.complete(incident_id, TASK_OF[Step.ROTATE], f"new {made.new_ref}", evidence)
        if ref.kind in data.CIPHERTEXT_KINDS:
            self.complete(incident_id, "data.rewrap", f"{rewrapped} ciphertext(s) re-encrypted", evidence)
        else:
            self._skip(incident_id, "data.rewrap", f"{ref} protects no registered ciphertexts")
        self._advance(incident_id, Status.ROTATED, evidence)
        return {"resource": str(ref), "new": str(made.new_ref), "rewrapped": rewrapped, "reused": False}

    def rollout(self, incident_id: int, targets: Sequence[Path] = (), *, retire: bool = True,
                secrets: Sequence[str] = ()) -> dict[str, Any]:
        """Deliver the new value to ``targets`` and ``secrets``, ask whether consumers switched, retire the old one.

        ``secrets`` are names of keyguard secrets (``--target secret:NAME``): each gets the new
        credential as a new version, whatever the adapter delivers (audited as ``connector.deliver``).
        """
        incident = self.incidents.get(incident_id)
        ref = incident_ref(incident)
        adapter = self.adapter(ref)
        out: dict[str, Any] = {"resource": str(ref)}
        made = self.rotation(ref)
        if made is None:
            if adapter.supports(Step.ROTATE):
                raise NotFoundError(f"{ref} has not been rotated yet",
                                    hint=f"keyguard incident rotate {incident_id} --resource {ref}")
            for step in (Step.DELIVER, Step.CONSUMERS_SWITCHED, Step.RETIRE):
                self.manual(incident, ref, step, adapter.instructions(step))
            return out
        rotation = made
        if targets:
            old = self.leaked(ref)
            delivered = self._step(incident, ref, adapter, Step.DELIVER,
                                   lambda: adapter.deliver(rotation, list(targets), old))
            if delivered is not None:
                out["delivered"] = list(delivered.detail.get("files", []))
        if secrets:
            out["delivered_secrets"] = self._deliver_secrets(ref, rotation, secrets)
        if not targets and not secrets and not adapter.supports(Step.DELIVER):
            self.manual(incident, ref, Step.DELIVER, adapter.instructions(Step.DELIVER))
        switched = self._step(incident, ref, adapter, Step.CONSUMERS_SWITCHED,
                              lambda: adapter.consumers_switched(rotation))
        if switched is not None:
            out["switched"] = {"is_switched": switched.is_switched, "evidence": list(switched.evidence)}
            if switched.is_switched:
                self.complete(incident_id, TASK_OF[Step.CONSUMERS_SWITCHED], "the consumers use the new credential",
                               {"resource": str(ref), "evidence": list(switched.evidence)})
        retired_before = any(e.kind == "retired" for e in self.incidents.get(incident_id).timeline)
        if retired_before:
            out["retired"] = ["retired earlier"]
        elif retire and (switched is None or switched.is_switched) and adapter.supports(Step.RETIRE):
            retired = self._step(incident, ref, adapter, Step.RETIRE, lambda: adapter.retire(rotation))
            if retired is not None:
                out["retired"] = list(retired.actions)
                self.incidents.record(incident_id, "retired", f"old credential of {ref} retired",
                                      {"actions": list(retired.actions)}, actor=self.actor)
        elif not adapter.supports(Step.RETIRE):
            self.manual(incident, ref, Step.RETIRE, adapter.instructions(Step.RETIRE))
        return out

    def _deliver_secrets(self, ref: Ref, rotation: Rotation, names: Sequence[str]) -> list[str]:
        if self.vault is None or self.principal is None:
            raise UsageError(f"cannot deliver {ref} to a keyguard secret here", hint="deliver to a file instead")
        store, principal, old = SecretStore(self.vault), self.principal, self.leaked(ref)
        self.on_step(f"deliver {ref} to {len(names)} secret(s) …")
        done = audit_step(self.audit, actor=self.actor, ref=ref, step=Step.DELIVER,
                          run=lambda: deliver_to_secrets(store, principal, names, rotation, old))
        return list(done.detail.get("secrets", []))

    def require(self, ref: Ref) -> None:
        """UnknownReferenceError unless the reference names a configured connector (or is external)."""
        if not ref.is_external and ref.connector not in self.connectors:
            raise UnknownReferenceError(f"unknown connector {ref.connector!r} in {ref}",
                                        hint="configured: " + (", ".join(sorted(self.connectors)) or "none"))
