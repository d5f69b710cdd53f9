"""``respond --resource REF``: the whole playbook on one resource held elsewhere, unattended.

open (or resume) → contain → prove dead → assess → rotate (+ re-encrypt) → deliver →
consumers switched → retire → obligations → report. Each step is idempotent: a rerun
after a crash resumes the open incident on the reference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from keyguard.clock import format_time
from keyguard.connectors.refs import Ref
from keyguard.errors import KeyguardError, UsageError
from keyguard.incident.model import Status
from keyguard.response.resource import ResourceResponder, find_resource_incident
from keyguard.response.respond import RespondResult, write_reports


def respond_resource(
    responder: ResourceResponder,
    ref: Ref,
    exposed_at: datetime | None,
    *,
    detected_at: datetime | None = None,
    jurisdictions: Sequence[str] = (),
    flags: Sequence[str] = (),
    targets: Sequence[Path] = (),
    secret_targets: Sequence[str] = (),
    report_dir: Path | None = None,
    report_formats: Sequence[str] = ("md",),
) -> RespondResult:
    """Run every step on ``ref``; ``attention`` lists what still needs a person (the manual tasks).

    The new credential goes to the files ``targets`` and the keyguard secrets ``secret_targets`` (names).
    """
    incidents = responder.incidents
    responder.require(ref)
    started = time.perf_counter()
    incident = find_resource_incident(incidents, ref)
    if incident is None:
        if exposed_at is None:
            raise UsageError(f"no open incident on {ref}", hint="pass --exposed-at (RFC 3339 or -2h)")
        incident = responder.open(ref, exposed_at, detected_at=detected_at, jurisdictions=jurisdictions,
                                  flags=flags, source="keyguard respond --resource")
    result = RespondResult(incident=incident.id)
    iid = incident.id

    def step(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        t0 = time.perf_counter()
        value = fn()
        result.steps.append({"step": name, "seconds": round(time.perf_counter() - t0, 3),
                             "at": format_time(incidents.clock.now()), **value})
        return value

    step("contain", lambda: responder.contain(iid))
    result.contained_seconds = round(time.perf_counter() - started, 3)
    try:  # contained already: a system whose usage record cannot be read must not stop the replacement
        assessed = step("assess", lambda: responder.assess(iid))
    except KeyguardError as exc:
        assessed = {}
        result.attention.append(f"assess {ref}: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
        incidents.record(iid, "task-failed", f"assessment of {ref} failed: {exc.message}",
                         {"hint": exc.hint}, actor=responder.actor)
    result.grade = str(assessed.get("grade", "unknown"))
    rotated = step("rotate", lambda: responder.rotate(iid))
    if "new" in rotated:
        result.rotated = [{"resource": str(ref), "new": rotated["new"]}]
        result.rewrapped = int(rotated.get("rewrapped", 0))
    rolled = step("rollout", lambda: responder.rollout(iid, targets, secrets=secret_targets))
    switched = rolled.get("switched")
    if isinstance(switched, dict):
        result.consumers = [switched]
        result.rollout_percent = 100.0 if switched.get("is_switched") else 0.0
    current = incidents.get(iid)
    now = incidents.clock.now()
    result.obligations = [o.to_dict(now) for o in current.obligations]
    responder.complete(iid, "comply.obligations", f"{len(current.obligations)} obligation(s) scheduled",
                        {"obligations": [o.regulation for o in current.obligations]})
    for task in current.tasks:
        if task.action == "manual" and task.id.startswith("manual-") and task.done_at is None:
            result.attention.append(f"task {task.id}: {task.title.en}")
    if isinstance(switched, dict) and not switched.get("is_switched"):
        result.attention.append(f"consumers of {ref} have not switched yet: "
                                f"keyguard incident rollout {iid} --resource {ref} once they have")
    for o in current.obligations:
        if o.done_at is None:
            result.attention.append(f"notify: {o.regulation} due "
                                    + (format_time(o.due_at) if o.due_at else "without undue delay"))
    if all(a.startswith("notify:") for a in result.attention) and "grade" in assessed:
        if incidents.get(iid).status.rank < Status.RECOVERED.rank and "retired" in rolled:
            incidents.advance_status(iid, Status.RECOVERED, {"resource": str(ref)}, actor=responder.actor)
    if report_dir is not None:
        result.reports.update(write_reports(incidents, iid, report_dir, report_formats))
        responder.complete(iid, "report.write", "reports written", {"reports": result.reports})
    result.overdue = incidents.get(iid).attention(incidents.clock.now())
    return result
