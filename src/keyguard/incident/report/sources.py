"""Gather a report's data from the shared store: audit events, the data inventory, the incident.

Only plain SQL over the shared tables (``audit_events``, ``data_items``) and
over the imported event segments (through DuckDB); what the assessment stored in ``incident.impact`` wins:
``impact["data"]`` or ``impact["data_items"]`` (what was under the leaked
versions when assessed), ``impact["factors"]`` and ``impact["anomalies"]``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

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
    params = {"names": names, "start": start, "end": end}
    for hour, key, version, n, denied in _hourly_rows(engine, tables, params):
        wanted = versions.get(key)
        if wanted is not None and version is not None and version != wanted:
            continue
        counts[hour][0] += int(n)
        counts[hour][1] += int(denied or 0)
    return [UsagePoint(_hour(h), c[0], c[1]) for h, c in sorted(counts.items())]


_HOURLY = (
    "SELECT substr(ts, 1, 13) AS hour, key, version, count(*) AS n, "  # noqa: S608 - fixed names
    "sum(CASE WHEN result = 'ok' THEN 0 ELSE 1 END) AS denied FROM {table} "
    "WHERE {names} AND ts >= {start} AND ts <= {end} GROUP BY substr(ts, 1, 13), key, version"
)


def _hourly_rows(engine: Engine, tables: set[str], params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Hourly counts per key and version from keyguard's own log and from the imported segments."""
    rows: list[tuple[Any, ...]] = []
    if "audit_events" in tables:
        query = text(
            _HOURLY.format(table="audit_events", names="key IN :names", start=":start", end=":end")
        ).bindparams(bindparam("names", expanding=True))
        with engine.connect() as conn:
            rows.extend(tuple(r) for r in conn.execute(query, params))
    if "event_segments" in tables:
        from keyguard.monitor.segments import Workspace, attach_view

        with Workspace() as ws:
            for name in params["names"]:
                attach_view(engine, ws, key=name, since=params["start"])
                duck_query = _HOURLY.format(table="imported_events", names="key = $key", start="$start", end="$end")
                rows.extend(
                    ws.con.execute(duck_query, {"key": name, "start": params["start"], "end": params["end"]}).fetchall()
                )
    return rows


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


def _remaining(engine: Engine, key: str, version: int) -> int:
    """Items of ``key`` still under ``version`` (0 once everything was re-wrapped)."""
    if "data_items" not in set(inspect(engine).get_table_names()):
        return 0
    query = text(
        "SELECT count(*) FROM data_items WHERE key_name = :key AND version = :version AND is_deleted = :deleted"
    )
    with engine.connect() as conn:
        params = {"key": key, "version": version, "deleted": False}
        return int(conn.execute(query, params).scalar_one())


def _int(value: object, default: int = 0) -> int:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else default


def data_items(engine: Engine, incident: Incident) -> list[DataItem]:
    """Items under the leaked versions: as assessed, else as the inventory has them now.

    The assessment may store ``impact["data"]`` (per key, version and class:
    ``{"key", "version", "class", "items", "records"}``) or ``impact["data_items"]``
    (one entry per item: ``{"name", "key", "version", "data_class", "records"}``).
    """
    aggregated = incident.impact.get("data")
    if isinstance(aggregated, list) and aggregated:
        rows = []
        for raw in aggregated:
            if not isinstance(raw, dict):
                continue
            key, version = str(raw.get("key", "")), _int(raw.get("version"))
            data_class = str(raw.get("class", raw.get("data_class", "other")))
            rows.append(
                DataItem(
                    f"{key}@{version} · {data_class}",
                    data_class,
                    _int(raw.get("records")),
                    key,
                    version,
                    rewrapped=_remaining(engine, key, version) == 0,
                    items=_int(raw.get("items"), 1),
                )
            )
        return rows
    current = _inventory(engine, incident)
    assessed = incident.impact.get("data_items")
    if isinstance(assessed, list) and assessed:
        items = []
        for raw in assessed:
            if not isinstance(raw, dict):
                continue
            name, version = str(raw.get("name", "")), _int(raw.get("version"))
            now_version = current.get(name, ("", "", 0, version))[3]
            items.append(
                DataItem(
                    name,
                    str(raw.get("data_class", "other")),
                    _int(raw.get("records")),
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


def exposed_items(incident: Incident) -> list[DataItem]:
    """The items the assessment recorded as exposed, by name (``impact["data_items"]``), as recorded."""
    found = []
    for raw in incident.impact.get("data_items") or []:
        if isinstance(raw, dict) and raw.get("name"):
            found.append(
                DataItem(
                    str(raw["name"]),
                    str(raw.get("data_class", "other")),
                    _int(raw.get("records")),
                    str(raw.get("key", "")),
                    _int(raw.get("version")),
                )
            )
    return found


def risk_factors(incident: Incident) -> list[tuple[str, str]]:
    """The reasons behind the grade stored by the assessment (``impact["factors"]``), en and zh."""
    raw = incident.impact.get("factors")
    found = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict) and item.get("en"):
            found.append((str(item["en"]), str(item.get("zh") or item["en"])))
    return found


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


def gather_report_data(service: IncidentService, incident_id: int, organisation: str = "") -> ReportData:
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
        exposed_items=exposed_items(incident),
        risk_factors=risk_factors(incident),
    )
