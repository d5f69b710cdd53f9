"""Gather a report's data from the shared store: audit events, the data inventory, the incident.

Only plain SQL over the shared tables (``audit_events``, ``imported_events``,
``data_items``); what the assessment stored in ``incident.impact`` wins:
``impact["data_items"]`` (the items under the leaked versions when assessed)
and ``impact["anomalies"]``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine, bindparam, inspect, text

from keyguard.clock import parse_time
from keyguard.errors import KeyguardError
from keyguard.incident.model import Incident
from keyguard.incident.report.data import Anomaly, DataItem, ReportData, UsagePoint

if TYPE_CHECKING:
    from keyguard.incident.service import IncidentService

#: How far before the exposure the usage chart starts (the baseline shown for contrast).
BASELINE = timedelta(days=2)


def _hour(prefix: str) -> datetime:
    return parse_time(prefix + ":00:00Z")


def usage_per_hour(engine: Engine, incident: Incident, until: datetime) -> list[UsagePoint]:
    """Events per hour on the incident's keys, from shortly before the exposure to ``until``."""
    tables = set(inspect(engine).get_table_names())
    start = (incident.exposed_at - BASELINE).strftime("%Y-%m-%dT%H")
    end = until.strftime("%Y-%m-%dT%H:99")
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    names = sorted({k.name for k in incident.keys})
    versions = {k.name: k.version for k in incident.keys}
    for table in ("audit_events", "imported_events"):
        if table not in tables:
            continue
        query = text(
            f"SELECT substr(ts, 1, 13) AS hour, key, version, count(*) AS n, "  # noqa: S608 - fixed names
            f"sum(CASE WHEN result = 'ok' THEN 0 ELSE 1 END) AS denied FROM {table} "
            "WHERE key IN :names AND ts >= :start AND ts <= :end "
            "GROUP BY substr(ts, 1, 13), key, version"
        ).bindparams(bindparam("names", expanding=True))
        with engine.connect() as conn:
            for hour, key, version, n, denied in conn.execute(
                query, {"names": names, "start": start, "end": end}
            ):
                wanted = versions.get(key)
                if wanted is not None and version is not None and version != wanted:
                    continue
                counts[hour][0] += int(n)
                counts[hour][1] += int(denied or 0)
    return [UsagePoint(_hour(h), c[0], c[1]) for h, c in sorted(counts.items())]


def _inventory(engine: Engine, incident: Incident) -> dict[str, tuple[str, str, int, int]]:
    """Item name → (key, data class, records, version) for the incident's keys."""
    if "data_items" not in set(inspect(engine).get_table_names()):
        return {}
    names = sorted({k.name for k in incident.keys})
    query = text(
        "SELECT name, key_name, version, data_class, records FROM data_items "
        "WHERE key_name IN :names AND is_deleted = :deleted"
    ).bindparams(bindparam("names", expanding=True))
    with engine.connect() as conn:
        rows = conn.execute(query, {"names": names, "deleted": False})
        return {str(r[0]): (str(r[1]), str(r[3]), int(r[4]), int(r[2])) for r in rows}


def data_items(engine: Engine, incident: Incident) -> list[DataItem]:
    """Items under the leaked versions: as assessed (impact), else as the inventory has them."""
    current = _inventory(engine, incident)
    assessed = incident.impact.get("data_items")
    if isinstance(assessed, list) and assessed:
        items = []
        for raw in assessed:
            if not isinstance(raw, dict):
                continue
            name, version = str(raw.get("name", "")), int(raw.get("version", 0))
            now_version = current.get(name, ("", "", 0, version))[3]
            items.append(
                DataItem(
                    name,
                    str(raw.get("data_class", "other")),
                    int(raw.get("records", 0)),
                    str(raw.get("key", "")),
                    version,
                    rewrapped=now_version > version,
                )
            )
        return items
    leaked = {(k.name, k.version) for k in incident.keys}
    keys_any = {k.name for k in incident.keys if k.version is None}
    return [
        DataItem(name, data_class, records, key, version)
        for name, (key, data_class, records, version) in sorted(current.items())
        if (key, version) in leaked or key in keys_any
    ]


def anomalies(incident: Incident) -> list[Anomaly]:
    """Anomalies stored by the assessment plus alerts recorded on the timeline."""
    found: list[Anomaly] = []
    raw = incident.impact.get("anomalies")
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict) and "at" in item:
            try:
                at = parse_time(str(item["at"]))
            except KeyguardError:
                continue
            found.append(
                Anomaly(
                    at,
                    str(item.get("kind", "anomaly")),
                    str(item.get("description", "")),
                    str(item.get("severity", "medium")),
                )
            )
    found += [
        Anomaly(e.at, e.kind, e.message, str(e.data.get("severity", "high")))
        for e in incident.timeline
        if e.kind == "alert"
    ]
    return sorted(found, key=lambda a: a.at)


def gather_report_data(
    service: IncidentService, incident_id: int, organisation: str = ""
) -> ReportData:
    """The report data of ``incident_id`` from the service's database."""
    incident = service.get(incident_id)
    now = service.clock.now()
    return ReportData(
        incident=incident,
        now=now,
        usage=usage_per_hour(service.engine, incident, now),
        anomalies=anomalies(incident),
        data_items=data_items(service.engine, incident),
        organisation=organisation,
    )
