"""Headings and phrases of the incident report (message ids; translations in the catalogs)."""

from __future__ import annotations

from keyguard.incident.i18n import N_, NC_, Localised

LABELS = Localised(
    {
        "report": N_("Incident report"),
        "generated": N_("Generated"),
        "summary": N_("Summary"),
        "keys": N_("Leaked keys"),
        "status": N_("Status"),
        "severity": N_("Risk grade"),
        "source": N_("Where it leaked"),
        "exposed": N_("Exposed"),
        "detected": N_("Detected"),
        "contained": N_("Contained"),
        "time_to_contain": N_("Time to contain (from detection)"),
        "exposure": N_("Exposure window"),
        "not_yet": N_("not yet"),
        "at_risk": N_("Data at risk"),
        "items_records": N_("{items} items, {records} records"),
        "sla": N_("Timeline against the SLA"),
        "phase": N_("Phase"),
        "due": N_("Due (UTC)"),
        "done": N_("Done (UTC)"),
        "result": N_("Result"),
        "met": N_("met"),
        "missed": N_("missed"),
        "open": N_("open"),
        "overdue": N_("overdue"),
        "state_pending": N_("pending"),
        "state_done": N_("done"),
        "state_not-applicable": N_("not applicable"),
        "state_overdue": N_("overdue"),
        "tasks": N_("Playbook tasks"),
        "events": N_("What was done when"),
        "at": N_("Time (UTC)"),
        "offset": N_("Since detection"),
        "actor": N_("By"),
        "what": N_("What"),
        "impact": N_("Impact"),
        "per_class": N_("Data per class"),
        "risk_factors": N_("Why this risk grade"),
        "class": N_("Class"),
        "item_count": N_("Items"),
        "records": N_("Records"),
        "item": N_("Item"),
        "key": N_("Key"),
        "rewrapped": N_("Re-wrapped"),
        "yes": N_("yes"),
        "no": N_("no"),
        "no_items": N_("No registered data under the leaked versions."),
        "more_items": N_("… and {n} more items."),
        "exposed_items": N_("Exposed items ({n}, by name, with the version at exposure)"),
        "usage": N_("Use of the key over time"),
        "usage_summary": N_("{total} uses recorded, {after} after the exposure, peak {peak} per hour at {peak_at}."),
        "no_usage": N_("No use of the key was recorded."),
        "anomalies": N_("Anomalies"),
        "kind": N_("Kind"),
        "description": N_("Description"),
        "no_anomalies": N_("No anomalies recorded."),
        "obligations": N_("Regulatory obligations"),
        "regulation": N_("Regulation"),
        "audience": N_("Audience"),
        "no_obligations": N_("No notification duty applies to the recorded facts."),
        "root_cause": N_("Root cause"),
        "root_cause_missing": N_("Not yet established."),
        "open_actions": N_("Actions still open"),
        "task": N_("Task"),
        "owner": N_("Owner"),
        "none_open": N_("Nothing is still open."),
        "hardening": N_("Hardening recommendations"),
        "no_due": N_("no fixed due time"),
    }
)

#: Incident statuses as the report names them.
STATUS_NAMES = Localised(
    {
        "open": NC_("incident status", "open"),
        "contained": NC_("incident status", "contained"),
        "assessed": NC_("incident status", "assessed"),
        "rotated": NC_("incident status", "rotated"),
        "recovered": NC_("incident status", "recovered"),
        "closed": NC_("incident status", "closed"),
    }
)

#: Hardening recommendations shown in every report (SPEC §1 step 6).
HARDENING: tuple[str, ...] = (
    N_("Rotate every key at least every 90 days and alert on keys past their rotation date."),
    N_("Keep high-tier keys in an HSM (PKCS#11) so that the material cannot be copied out."),
    N_("Scan commits before they are pushed (pre-commit hook and CI) and enable push protection."),
    N_("Give each client the least privilege it needs, and short-lived tokens instead of static secrets."),
    N_("Require a second factor (TOTP) for destructive and administrative operations."),
    N_("Run a leaked-key drill every quarter and measure it against the 1 h containment SLA."),
)

#: Units of the durations shown in the report ("2m 00s", "3.21 s").
UNITS = Localised(
    {
        "seconds": N_("{s} s"),
        "dhm": N_("{d}d {h}h {m:02d}m"),
        "hm": N_("{h}h {m:02d}m"),
        "ms": N_("{m}m {s:02d}s"),
    }
)
