"""What each dashboard page shows, shaped from the services (no HTML, no request).

Every function here only reads. Values are plain dicts and strings ready for
the templates; no key material, token or audit hash chain secret is ever put
in them (fingerprints are safe by design, SPEC §3).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, inspect, select, text

from keyguard.audit.reading import iter_events, verify_log
from keyguard.clock import as_utc
from keyguard.errors import ChainIntegrityError, KeyguardError
from keyguard.incident.model import Incident, ItemState, Obligation, Phase, Status
from keyguard.incident.report.sources import risk_factors
from keyguard.incident.service import IncidentService
from keyguard.store.tables import AuditHead
from keyguard.vault.lifecycle import VersionState
from keyguard.vault.principal import Principal
from keyguard.vault.service import KeyInfo, Vault

SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2, "unknown": 3}
AUDIT_PAGE = 100
ALERT_PAGE = 200


aware = as_utc  # kept as the views' name for it


def short_time(at: datetime | None, none: str = "—") -> str:
    """``2026-11-27 09:00 UTC``."""
    if at is None:
        return none
    return aware(at).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(at: datetime | None) -> str:
    """RFC 3339 UTC for ``<time datetime>`` and the countdown script."""
    if at is None:
        return ""
    return aware(at).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def span(delta: timedelta) -> str:
    """A compact duration: ``45s``, ``12m``, ``3h 05m``, ``2d 4h``."""
    seconds = abs(int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def countdown(due: datetime | None, now: datetime, done: datetime | None = None) -> dict[str, Any]:
    """A countdown to ``due``: text, state (done, late, overdue, soon, pending) and the ISO time."""
    if done is not None:
        late = aware(done) - aware(due) if due is not None else timedelta(0)
        if late <= timedelta(0):
            return {"text": "done", "state": "done", "due": iso(due), "live": False}
        return {"text": f"done {span(late)} late", "state": "late", "due": iso(due), "live": False}
    if due is None:
        return {"text": "no fixed due time", "state": "pending", "due": "", "live": False}
    left = aware(due) - now
    if left < timedelta(0):
        return {"text": f"overdue by {span(left)}", "state": "overdue", "due": iso(due), "live": True}
    state = "soon" if left <= timedelta(hours=1) else "pending"
    return {"text": f"due in {span(left)}", "state": state, "due": iso(due), "live": True}


def _phase_view(phase: Phase, now: datetime, lang: str = "en") -> dict[str, Any]:
    state = phase.state(now)
    return {
        "name": phase.name,
        "title": phase.title.get(lang),
        "due": short_time(phase.due_at),
        "done": short_time(phase.done_at),
        "state": str(state),
        "countdown": countdown(phase.due_at, now, phase.done_at),
        "tasks": [
            {
                "id": t.id,
                "title": t.title.get(lang),
                "owner": t.owner,
                "action": t.action,
                "due": short_time(t.due_at),
                "done": short_time(t.done_at),
                "done_by": t.done_by or "",
                "open": t.done_at is None,
                "note": t.note,
                "state": str(t.state(now)),
                "countdown": countdown(t.due_at, now, t.done_at),
            }
            for t in phase.tasks
        ],
    }


def _obligation_view(ob: Obligation, now: datetime, lang: str = "en") -> dict[str, Any]:
    return {
        "regulation": ob.regulation,
        "title": ob.title.get(lang),
        "audience": ob.audience.get(lang),
        "jurisdiction": ob.jurisdiction,
        "deadline": ob.deadline.get(lang),
        "due": short_time(ob.due_at, "no fixed due time"),
        "done": short_time(ob.done_at),
        "reference": ob.reference,
        "source": ob.source if ob.source.startswith(("https://", "http://")) else "",
        "state": str(ob.state(now)),
        "countdown": countdown(ob.due_at, now, ob.done_at),
    }


def incident_summary(incident: Incident, now: datetime) -> dict[str, Any]:
    """One row of the overview: status, severity, the current SLA phase and overdue duties."""
    current = next((p for p in incident.phases if p.done_at is None), None)
    overdue_obligations = [_obligation_view(o, now) for o in incident.obligations if o.state(now) is ItemState.OVERDUE]
    upcoming = [o for o in incident.obligations if o.state(now) is ItemState.PENDING and o.due_at is not None]
    next_obligation = min(upcoming, key=lambda o: o.due_at or now, default=None)
    return {
        "id": incident.id,
        "title": incident.title,
        "status": str(incident.status),
        "severity": str(incident.severity),
        "keys": [str(k) for k in incident.keys],
        "detected": short_time(incident.detected_at),
        "phases": [
            {"name": p.name, "title": p.title.en, "state": str(p.state(now)), "current": p is current}
            for p in incident.phases
        ],
        "current_phase": _phase_view(current, now) if current is not None else None,
        "overdue_obligations": overdue_obligations,
        "next_obligation": _obligation_view(next_obligation, now) if next_obligation is not None else None,
        "attention": len(incident.attention(now)),
    }


def attention(incident: Incident, now: datetime, max_tasks: int = 4) -> list[str]:
    """What needs a person now, in short sentences: each overdue obligation, then the overdue tasks."""
    if incident.is_closed:
        return []
    items = [
        f"{o.regulation} notice overdue by {span(now - aware(o.due_at))} (was due {short_time(o.due_at)})"
        for o in incident.obligations
        if o.due_at is not None and o.state(now) is ItemState.OVERDUE
    ]
    late = [t.id for t in incident.tasks if t.state(now) is ItemState.OVERDUE]
    if late:
        shown = ", ".join(late[:max_tasks]) + (f" and {len(late) - max_tasks} more" if len(late) > max_tasks else "")
        items.append(f"{len(late)} task{'s' if len(late) != 1 else ''} overdue: {shown}")
    return items


def table_exists(engine: Engine, name: str) -> bool:
    """True when the database has table ``name`` (optional modules create their own)."""
    return bool(inspect(engine).has_table(name))


def open_alert_count(engine: Engine) -> int | None:
    """Open alerts, or None when the monitor's ``alerts`` table does not exist."""
    if not table_exists(engine, "alerts"):
        return None
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM alerts WHERE status = 'open'")).scalar_one())


def key_state_counts(keys: list[KeyInfo]) -> list[dict[str, Any]]:
    """Key versions per state, in lifecycle order (every state shown, zero or not)."""
    counts = Counter(v.state for k in keys for v in k.versions.values())
    return [{"state": str(s), "count": counts.get(str(s), 0)} for s in VersionState]


def overview(vault: Vault, incidents: IncidentService, principal: Principal) -> dict[str, Any]:
    """The overview page: open incidents, keys by state, open alerts."""
    now = incidents.clock.now()
    # One query per open status: closed incidents (the bulk, over time) are never loaded.
    open_incidents = [i for status in Status if status is not Status.CLOSED for i in incidents.list(status=status)]
    rows = [incident_summary(i, now) for i in open_incidents]
    rows.sort(key=lambda r: (-r["attention"], SEVERITY_ORDER.get(r["severity"], 9), -r["id"]))
    keys = vault.list_keys(principal)
    compromised = sorted(
        {k.name for k in keys if any(v.state == VersionState.COMPROMISED for v in k.versions.values())}
    )
    return {
        "incidents": rows,
        "overdue_total": sum(len(r["overdue_obligations"]) for r in rows),
        "attention_total": sum(r["attention"] for r in rows),
        "key_total": len(keys),
        "key_states": key_state_counts(keys),
        "compromised_keys": compromised,
        "open_alerts": open_alert_count(vault.engine),
    }


def incident_detail(incidents: IncidentService, incident_id: int) -> dict[str, Any]:
    """The incident page: phases and tasks, obligations, timeline, risk factors."""
    incident = incidents.get(incident_id)
    now = incidents.clock.now()
    return {
        "incident": {
            "id": incident.id,
            "title": incident.title,
            "status": str(incident.status),
            "severity": str(incident.severity),
            "keys": [str(k) for k in incident.keys],
            "source": incident.source,
            "playbook": incident.playbook,
            "exposed": short_time(incident.exposed_at),
            "detected": short_time(incident.detected_at),
            "exposed_iso": iso(incident.exposed_at),
            "detected_iso": iso(incident.detected_at),
            "jurisdictions": incident.jurisdictions,
            "data_classes": incident.data_classes,
            "flags": incident.flags,
            "root_cause": incident.root_cause,
            "is_closed": incident.is_closed,
        },
        "attention": attention(incident, now),
        "phases": [_phase_view(p, now) for p in incident.phases],
        "obligations": [_obligation_view(o, now) for o in incident.obligations],
        "timeline": [
            {
                "at": short_time(e.at),
                "iso": iso(e.at),
                "offset": ("+" if e.at >= incident.detected_at else "−") + span(e.at - incident.detected_at),
                "kind": e.kind,
                "actor": e.actor,
                "message": e.message,
            }
            for e in incident.timeline
        ],
        "risk_factors": [en for en, _zh in risk_factors(incident)],
    }


def key_rows(vault: Vault, principal: Principal) -> list[dict[str, Any]]:
    """Every key with its versions (metadata only), compromised keys first."""
    rows = []
    for key in vault.list_keys(principal):
        versions = sorted(key.versions.values(), key=lambda v: v.version, reverse=True)
        rows.append(
            {
                "name": key.name,
                "purpose": key.purpose,
                "tier": key.tier,
                "owner": key.owner,
                "tags": key.tags,
                "rotation_days": key.rotation_days,
                "rotated": short_time(key.rotated_at),
                "last_used": short_time(key.last_used_at, "never"),
                "is_compromised": any(v.state == VersionState.COMPROMISED for v in versions),
                "versions": [
                    {
                        "version": v.version,
                        "algorithm": v.algorithm,
                        "state": v.state,
                        "fingerprint": v.fingerprint,
                        "origin": v.origin,
                        "created": short_time(v.created_at),
                        "changed": short_time(v.state_changed_at),
                        "last_used": short_time(v.last_used_at, "never"),
                    }
                    for v in versions
                ],
            }
        )
    rows.sort(key=lambda r: (not r["is_compromised"], r["name"]))
    return rows


def alert_rows(engine: Engine) -> list[dict[str, Any]] | None:
    """Open alerts, newest first; None when the monitor's tables do not exist."""
    if not table_exists(engine, "alerts"):
        return None
    from keyguard.monitor.alerts import list_alerts

    alerts = list_alerts(engine, status="open", limit=ALERT_PAGE)
    alerts.sort(key=lambda a: (SEVERITY_ORDER.get(str(a["severity"]), 9), -int(a["id"])))
    return [
        {
            "id": a["id"],
            "rule": a["rule"],
            "severity": a["severity"],
            "key": a["key"] or "",
            "title": a["title"],
            "count": a["count"],
            "first_seen": str(a["first_seen"])[:19].replace("T", " "),
            "last_seen": str(a["last_seen"])[:19].replace("T", " "),
            "incident_id": a["incident_id"],
        }
        for a in alerts
    ]


def chain_status(vault: Vault) -> dict[str, Any]:
    """The audit chain badge: verified (with the event count) or broken (at which event)."""
    try:
        result = verify_log(vault.engine, vault.checkpoint_key)
    except ChainIntegrityError as exc:
        return {"ok": False, "text": exc.message, "events": None}
    except KeyguardError as exc:
        return {"ok": False, "text": f"not verified: {exc.message}", "events": None}
    note = " and head checkpoint" if result["checkpoint"] else ""
    return {
        "ok": True,
        "text": f"verified: {result['events']} events{note}",
        "events": int(result["events"]),
    }


def last_events(engine: Engine, limit: int = AUDIT_PAGE) -> list[dict[str, Any]]:
    """The last ``limit`` audit events, newest first (read with :func:`iter_events`)."""
    with engine.connect() as conn:
        last_id = conn.execute(select(AuditHead.last_id).where(AuditHead.id == 1)).scalar()
    since = max(0, int(last_id or 0) - limit)
    events = list(iter_events(engine, since_id=since, batch=limit + 1))[-limit:]
    return [
        {
            "id": e["id"],
            "ts": str(e["ts"])[:19].replace("T", " "),
            "actor": e["actor"],
            "source_ip": e["source_ip"] or "",
            "op": e["op"],
            "key": e["key"] or "",
            "version": e["version"] if e["version"] is not None else "",
            "result": e["result"],
            "reason": e["reason"] or "",
            "hash": str(e["hash"])[:12],
        }
        for e in reversed(events)
    ]
