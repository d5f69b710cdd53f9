"""``keyguard respond``: the whole playbook for one leaked key, unattended.

contain → verify dead → assess → rotate → re-wrap → rollout check →
obligations → report. Every step is idempotent, so rerunning ``respond`` after
a crash resumes the open incident for the key instead of opening another.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from keyguard.clock import format_time
from keyguard.incident.model import Incident, Status
from keyguard.incident.service import IncidentService
from keyguard.response import rollout
from keyguard.response.block import block_versions
from keyguard.response.steps import Progress, Responder
from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault

Step = Callable[[str], None]


@dataclass
class RespondResult:
    """What ``respond`` did and what still needs a person."""

    incident: int
    contained_seconds: float = 0.0
    steps: list[dict[str, Any]] = field(default_factory=list)
    grade: str = "unknown"
    rotated: list[dict[str, Any]] = field(default_factory=list)
    rewrapped: int = 0
    consumers: list[dict[str, Any]] = field(default_factory=list)
    rollout_percent: float = 100.0
    obligations: list[dict[str, Any]] = field(default_factory=list)
    reports: dict[str, str] = field(default_factory=dict)
    attention: list[str] = field(default_factory=list)  # what is still to do (informational)
    overdue: list[str] = field(default_factory=list)  # missed deadlines: the exit code, as ``incident show``

    def to_dict(self) -> dict[str, Any]:
        """JSON view (``{"incident": ID, …}``)."""
        return {
            "incident": self.incident,
            "contained_seconds": self.contained_seconds,
            "grade": self.grade,
            "steps": self.steps,
            "rotated": self.rotated,
            "rewrapped": self.rewrapped,
            "consumers": self.consumers,
            "rollout_percent": self.rollout_percent,
            "obligations": self.obligations,
            "reports": self.reports,
            "attention": self.attention,
            "overdue": self.overdue,
        }


def find_open_incident(incidents: IncidentService, keys: Sequence[tuple[str, int | None]]) -> Incident | None:
    """An incident not yet closed that covers every key named (to resume instead of duplicating)."""
    names = {name for name, _ in keys}
    for incident in incidents.list():
        if incident.status is Status.CLOSED:
            continue
        if names <= {k.name for k in incident.keys}:
            return incident
    return None


def respond(
    vault: Vault,
    incidents: IncidentService,
    principal: Principal,
    keys: Sequence[tuple[str, int | None]],
    exposed_at: datetime,
    *,
    detected_at: datetime | None = None,
    jurisdictions: Sequence[str] = (),
    flags: Sequence[str] = (),
    source: str = "keyguard respond",
    algorithm: str | None = None,
    suspend_clients: bool = False,
    report_dir: Path | None = None,
    report_formats: Sequence[str] = ("md", "html"),
    on_step: Step | None = None,
    progress: Progress | None = None,
    contained_seconds: float | None = None,
) -> RespondResult:
    """Run the whole response; returns the result (``attention`` lists what needs a person)."""
    started = time.perf_counter()
    say = on_step or (lambda _msg: None)
    for name, _version in keys:
        vault.key_info(name)  # unknown keys fail before anything changes
    # Block first, open the paperwork second: the key is dead before the incident exists.
    block_versions(vault, principal, keys, reason="respond: containment")
    if contained_seconds is None:  # callers that blocked earlier pass their own measure
        contained_seconds = round(time.perf_counter() - started, 3)
    responder = Responder(vault, incidents, principal)
    incident = find_open_incident(incidents, keys)
    if incident is None:
        incident = incidents.open(
            keys, exposed_at, detected_at, source, jurisdictions, (), flags, actor=principal.actor
        )
        say(f"opened incident {incident.id}")
    else:
        say(f"resuming incident {incident.id} ({incident.status})")
        # facts given on this run count on a resumed incident too (the regulators' clocks follow)
        if set(jurisdictions) - set(incident.jurisdictions) or set(flags) - set(incident.flags):
            incident = incidents.update_facts(
                incident.id, add_jurisdictions=jurisdictions, add_flags=flags, actor=principal.actor
            )
    result = RespondResult(incident=incident.id)

    def step(name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        say(f"{name} …")
        value = fn()
        result.steps.append(
            {
                "step": name,
                "seconds": round(time.perf_counter() - t0, 3),
                "at": format_time(vault.clock.now()),
            }
        )
        return value

    step("contain", lambda: responder.contain(incident.id, suspend_clients=suspend_clients))
    result.contained_seconds = contained_seconds
    assessments = step("assess", lambda: responder.assess(incident.id))
    result.grade = max((a.grade for a in assessments), key=["low", "medium", "high"].index)
    rotation = step("rotate and re-wrap", lambda: responder.rotate(incident.id, algorithm, progress))
    result.rotated = rotation["rotated"]
    result.rewrapped = sum(r["rewrapped"] for r in rotation["rewrap"])

    def check_rollout() -> None:
        statuses = [s for name, _ in keys for s in rollout.consumers(vault, name)]
        result.consumers = [s.to_dict() for s in statuses]
        result.rollout_percent = rollout.percent_done(statuses)
        pending = [s.client for s in statuses if s.status != "switched"]
        evidence = {"consumers": result.consumers, "percent": result.rollout_percent}
        if pending:
            result.attention.append(
                f"{len(pending)} consumer(s) have not switched to the new version yet: {', '.join(pending)} "
                "(keyguard incident rollout shows them; --update rewrites declared references)"
            )
            incidents.record(
                incident.id,
                "rollout",
                f"rollout {result.rollout_percent}% done",
                evidence,
                actor=principal.actor,
            )
        else:
            responder.complete_action(incident.id, "rollout.check", "every consumer uses the new version", evidence)

    step("rollout check", check_rollout)

    def obligations() -> None:
        current = incidents.get(incident.id)
        now = vault.clock.now()
        result.obligations = [o.to_dict(now) for o in current.obligations]
        responder.complete_action(
            incident.id,
            "comply.obligations",
            f"{len(current.obligations)} obligation(s) scheduled",
            {"obligations": [o.regulation for o in current.obligations]},
        )
        responder.complete_action(
            incident.id,
            "monitor.watch",
            "leaked versions are tripwires: any use is refused and alerts",
            {"tripwire": [f"{r.name}@{r.version or '*'}" for r in current.keys]},
        )
        for o in current.obligations:
            if o.done_at is None:
                result.attention.append(
                    f"notify: {o.regulation} ({o.audience.en}) due "
                    + (format_time(o.due_at) if o.due_at else "without undue delay")
                )

    step("obligations", obligations)
    if not result.attention or all(a.startswith("notify:") for a in result.attention):
        current = incidents.get(incident.id)
        if current.status.rank < Status.RECOVERED.rank:
            incidents.advance_status(
                incident.id,
                Status.RECOVERED,
                {"rollout_percent": result.rollout_percent},
                actor=principal.actor,
            )
    if report_dir is not None:
        step(
            "report",
            lambda: result.reports.update(write_reports(incidents, incident.id, report_dir, report_formats)),
        )
        responder.complete_action(incident.id, "report.write", "reports written", {"reports": result.reports})
    result.overdue = incidents.get(incident.id).attention(vault.clock.now())
    return result


def write_reports(
    incidents: IncidentService, incident_id: int, directory: Path, formats: Sequence[str]
) -> dict[str, str]:
    """Render the incident report in English and Chinese; returns ``{"en.html": path, …}``."""
    import os

    from keyguard.incident.report.render import render_report
    from keyguard.incident.report.sources import gather_report_data

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = gather_report_data(incidents, incident_id)
    paths: dict[str, str] = {}
    for lang in ("en", "zh"):
        for fmt in formats:
            path = directory / f"incident-{incident_id}-{lang}.{fmt}"
            tmp = path.with_name(f".{path.name}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(render_report(data, fmt, lang))
            os.replace(tmp, path)
            paths[f"{lang}.{fmt}"] = str(path)
    return paths
