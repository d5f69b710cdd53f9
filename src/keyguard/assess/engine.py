"""Damage assessment of a leaked key (seed step 2), pushed down to the database.

Everything is computed with a handful of aggregate SQL queries, run by the
database over keyguard's own audit events and by DuckDB over the segments of
imported events that hold the key (never a Python loop over rows), so that a
million events assess in seconds on SQLite or PostgreSQL:

* sources never seen in the baseline window: source IPs, actors (clients), user agents;
* bursts: minutes whose rate is far above the baseline's high percentile;
* refused calls (denied / error) after the exposure;
* activity in hours of the day the key is normally idle;
* the data registered under the affected versions.

keyguard's own operations (actors ``keyguard:*`` such as the probes that prove a
version dead, the local CLI's ``cli:*``, request ids ``keyguard:*``) are not the
attacker: they are listed apart (``own_operations``, for the timeline) and left out
of the new actors, refused calls and operations after the exposure.

The grade (high / medium / low) comes from weighted factors, each explained in
one sentence in English and Simplified Chinese.
"""

from __future__ import annotations

import math
import re
from collections import namedtuple
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Engine, text

from keyguard.audit.log import format_ts
from keyguard.clock import format_time

if TYPE_CHECKING:
    from keyguard.monitor.segments import Workspace

SENSITIVE_CLASSES = frozenset({"pii", "payment", "credentials", "secrets"})
_TIER_WEIGHT = {"high": 2, "medium": 1, "low": 0}

#: Actors and request ids of keyguard's own operations in its audit log (SQL LIKE patterns).
OWN_ACTOR_PATTERNS = ("keyguard:%", "cli:%")
OWN_REQUEST_PATTERN = "keyguard:%"


def is_own(actor: str | None, request_id: str | None = None) -> bool:
    """True for an operation keyguard itself performed (probe, response step, local CLI)."""
    prefixes = tuple(p.rstrip("%") for p in OWN_ACTOR_PATTERNS)
    return (actor or "").startswith(prefixes) or (request_id or "").startswith(OWN_REQUEST_PATTERN.rstrip("%"))


@dataclass(frozen=True)
class Factor:
    """One reason behind the grade."""

    name: str
    weight: int
    en: str
    zh: str

    def to_dict(self) -> dict[str, Any]:
        """JSON view."""
        return {"factor": self.name, "weight": self.weight, "en": self.en, "zh": self.zh}


@dataclass
class Assessment:
    """What the attacker may have done, what the key protected, and how bad it is."""

    key: str
    versions: list[int]
    exposed_at: datetime
    baseline_from: datetime
    assessed_at: datetime
    events_total: int = 0
    events_after_exposure: int = 0
    new_source_ips: list[dict[str, Any]] = field(default_factory=list)
    new_actors: list[dict[str, Any]] = field(default_factory=list)
    new_user_agents: list[dict[str, Any]] = field(default_factory=list)
    bursts: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    off_hours: list[dict[str, Any]] = field(default_factory=list)
    ops_after_exposure: list[dict[str, Any]] = field(default_factory=list)
    own_operations: list[dict[str, Any]] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)
    hourly: list[dict[str, Any]] = field(default_factory=list)
    baseline_minute_p99: float = 0.0
    factors: list[Factor] = field(default_factory=list)
    grade: str = "low"

    @property
    def anomalies(self) -> int:
        """How many distinct anomalies were found."""
        return (
            len(self.new_source_ips)
            + len(self.new_actors)
            + len(self.new_user_agents)
            + len(self.bursts)
            + len(self.off_hours)
            + (1 if self.refused else 0)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON view."""
        return {
            "key": self.key,
            "versions": self.versions,
            "exposed_at": format_time(self.exposed_at),
            "baseline_from": format_time(self.baseline_from),
            "assessed_at": format_time(self.assessed_at),
            "events_total": self.events_total,
            "events_after_exposure": self.events_after_exposure,
            "new_source_ips": self.new_source_ips,
            "new_actors": self.new_actors,
            "new_user_agents": self.new_user_agents,
            "bursts": self.bursts,
            "refused": self.refused,
            "off_hours": self.off_hours,
            "ops_after_exposure": self.ops_after_exposure,
            "own_operations": self.own_operations,
            "data": self.data,
            "baseline_minute_p99": self.baseline_minute_p99,
            "grade": self.grade,
            "factors": [f.to_dict() for f in self.factors],
        }


def _table_names(engine: Engine) -> set[str]:
    from sqlalchemy import inspect

    return set(inspect(engine).get_table_names())


def _row_sets(engine: Engine, key: str, versions: list[int] | None, params: dict[str, str]) -> Iterator[RowSets]:
    """The three query results over keyguard's own audit log, then over the key's imported segments."""
    names = _table_names(engine)
    if "audit_events" in names:
        with engine.connect() as conn:
            yield RowSets(*(conn.execute(text(q), params).all() for q in _queries("audit_events", versions)))
    if "event_segments" in names:
        from keyguard.monitor.segments import Workspace, attach_view

        with Workspace() as ws:
            if attach_view(ws=ws, engine=engine, key=key, since=params["base"]):
                yield RowSets(*(duck_rows(ws, q, params) for q in _queries("imported_events", versions)))


class RowSets(NamedTuple):
    """Aggregated rows of one source: per-minute counts, baseline sources, activity after the exposure."""

    per_minute: Sequence[Any]
    baseline_sources: Sequence[Any]
    after: Sequence[Any]


def duck_rows(ws: Workspace, query: str, params: dict[str, Any]) -> list[Any]:
    """Run a ``:name``-parameterised query in DuckDB; rows with attribute access, like SQLAlchemy's."""
    used = set(_PARAM.findall(query))
    cursor = ws.con.execute(_PARAM.sub(r"$\1", query), {k: v for k, v in params.items() if k in used})
    row_type = namedtuple("Row", [d[0] for d in cursor.description or ()])  # type: ignore[misc]  # noqa: PYI024
    return [row_type(*r) for r in cursor.fetchall()]


_PARAM = re.compile(r"(?<![:\w]):(\w+)")


def _version_filter(versions: list[int] | None) -> str:
    if not versions:
        return ""
    return " AND (version IS NULL OR version IN (" + ",".join(str(int(v)) for v in versions) + "))"


def _queries(table: str, versions: list[int] | None) -> tuple[str, str, str]:
    """Three aggregate queries per source table; each returns aggregated rows only.

    They run per table rather than over a UNION (which SQLite would materialise
    once per query) and use the (key, ts) index.
    """
    # The first two are answered from covering indexes (migration 0004): the
    # per-minute histogram streams in index order, with no sort and no row lookups.
    per_minute = (
        "SELECT SUBSTR(ts, 1, 16) AS minute, COUNT(*) AS n, "  # noqa: S608 - table from a fixed list
        f"SUM(CASE WHEN result = 'ok' THEN 0 ELSE 1 END) AS refused FROM {table} "
        "WHERE key = :key AND SUBSTR(ts, 1, 16) >= :base_minute GROUP BY SUBSTR(ts, 1, 16)"
    )
    # Minute bounds let both tables answer from an index (own events: the one covering index).
    baseline_sources = (
        f"SELECT DISTINCT source_ip, actor, user_agent FROM {table} "  # noqa: S608 - table from a fixed list
        "WHERE key = :key AND SUBSTR(ts, 1, 16) >= :base_minute AND SUBSTR(ts, 1, 16) < :exp_minute"
    )
    where = f"FROM {table} WHERE key = :key AND ts >= :base{_version_filter(versions)}"
    # Only keyguard's own log holds keyguard's own operations; imported logs are other systems'.
    own = (
        "CASE WHEN "
        + " OR ".join([f"actor LIKE '{p}'" for p in OWN_ACTOR_PATTERNS] + [f"request_id LIKE '{OWN_REQUEST_PATTERN}'"])
        + " THEN 1 ELSE 0 END"
        if table == "audit_events"
        else "0"
    )
    after = (
        f"SELECT source_ip, actor, user_agent, op, result, reason, {own} AS own, COUNT(*) AS n, "
        f"MIN(ts) AS first_ts, MAX(ts) AS last_ts {where} AND ts >= :exp "
        "GROUP BY source_ip, actor, user_agent, op, result, reason" + (f", {own}" if own != "0" else "")
    )
    return per_minute, baseline_sources, after


def assess(
    engine: Engine,
    key: str,
    exposed_at: datetime,
    *,
    now: datetime,
    versions: list[int] | None = None,
    tier: str = "medium",
    baseline: timedelta = timedelta(days=30),
    detected_at: datetime | None = None,
    data: list[dict[str, Any]] | None = None,
) -> Assessment:
    """Assess the use of ``key`` (``versions``) since ``exposed_at`` against the baseline before it."""
    base = exposed_at - baseline
    result = Assessment(key, versions or [], exposed_at, base, now, data=list(data or []))
    params = {
        "key": key,
        "base": format_ts(base),
        "exp": format_ts(exposed_at),
        "base_minute": format_ts(base)[:16],
        "exp_minute": format_ts(exposed_at)[:16],
    }
    minutes: dict[str, list[int]] = {}
    seen: dict[str, set[str]] = {"source_ip": set(), "actor": set(), "user_agent": set()}
    after_rows: list[Any] = []
    own_rows: list[Any] = []
    for rows in _row_sets(engine, key, versions, params):
        for r in rows.per_minute:
            slot = minutes.setdefault(r.minute, [0, 0])
            slot[0] += int(r.n)
            slot[1] += int(r.refused or 0)
        for r in rows.baseline_sources:
            for column in seen:
                value = getattr(r, column)
                if value is not None:
                    seen[column].add(value)
        for r in rows.after:
            (own_rows if int(r.own) else after_rows).append(r)
    result.own_operations = _own_operations(own_rows)
    exp_minute = params["exp"][:16]
    result.events_total = sum(n for n, _ in minutes.values())
    result.events_after_exposure = sum(int(r.n) for r in after_rows)
    for column, target in (
        ("source_ip", result.new_source_ips),
        ("actor", result.new_actors),
        ("user_agent", result.new_user_agents),
    ):
        target.extend(_first_seen(after_rows, column, seen[column]))
    refused: dict[tuple[str, str | None], dict[str, Any]] = {}
    ops: dict[str, int] = {}
    for r in after_rows:
        ops[r.op] = ops.get(r.op, 0) + int(r.n)
        if r.result != "ok":
            item = refused.setdefault(
                (r.result, r.reason),
                {"result": r.result, "reason": r.reason, "events": 0, "first": r.first_ts},
            )
            item["events"] += int(r.n)
            item["first"] = min(item["first"], r.first_ts)
    result.refused = sorted(refused.values(), key=lambda x: -x["events"])[:25]
    result.ops_after_exposure = [{"op": op, "events": n} for op, n in sorted(ops.items(), key=lambda x: -x[1])]
    hours: dict[str, list[int]] = {}
    for minute, (n, bad) in minutes.items():
        slot = hours.setdefault(minute[:13], [0, 0])
        slot[0] += n
        slot[1] += bad
    result.hourly = [{"hour": h + ":00:00Z", "events": n, "refused": bad} for h, (n, bad) in sorted(hours.items())]
    _bursts(result, [(m, n) for m, (n, _) in minutes.items()], exp_minute, baseline)
    _off_hours(result, [(h, n) for h, (n, _) in hours.items()], params["exp"][:13])
    _grade(result, tier, detected_at)
    return result


def _own_operations(rows: list[Any]) -> list[dict[str, Any]]:
    """keyguard's own operations after the exposure, per actor, op and result (for the timeline)."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        item = found.setdefault(
            (r.actor, r.op, r.result),
            {"actor": r.actor, "op": r.op, "result": r.result, "events": 0, "first": r.first_ts, "last": r.last_ts},
        )
        item["events"] += int(r.n)
        item["first"] = min(item["first"], r.first_ts)
        item["last"] = max(item["last"], r.last_ts)
    return sorted(found.values(), key=lambda x: (x["first"], x["actor"], x["op"]))


def _first_seen(after_rows: list[Any], column: str, baseline: set[str], limit: int = 25) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for r in after_rows:
        value = getattr(r, column)
        if value is None or value in baseline:
            continue
        item = found.setdefault(value, {"value": value, "events": 0, "ok": 0, "first": r.first_ts, "last": r.last_ts})
        item["events"] += int(r.n)
        item["ok"] += int(r.n) if r.result == "ok" else 0
        item["first"] = min(item["first"], r.first_ts)
        item["last"] = max(item["last"], r.last_ts)
    return sorted(found.values(), key=lambda x: -x["events"])[:limit]


def _percentile(values: list[int], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return float(ordered[index])


def _bursts(result: Assessment, minute_rows: list[tuple[str, int]], exp_minute: str, baseline: timedelta) -> None:
    before = [n for minute, n in minute_rows if minute < exp_minute]
    # Idle minutes count as zero: the baseline rate is over the whole window.
    idle = max(0, int(baseline.total_seconds() // 60) - len(before))
    p99 = _percentile(before + [0] * min(idle, 100_000), 0.99)
    result.baseline_minute_p99 = p99
    threshold = max(20.0, 5.0 * max(p99, 1.0))
    bursts: list[dict[str, Any]] = [
        {"minute": minute + ":00Z", "events": n, "threshold": threshold}
        for minute, n in minute_rows
        if minute >= exp_minute and n > threshold
    ]
    bursts.sort(key=lambda b: -b["events"])
    result.bursts = bursts[:25]


def _off_hours(result: Assessment, hour_rows: list[tuple[str, int]], exp_hour: str) -> None:
    by_hour_of_day = [0] * 24
    total = 0
    for hour, n in hour_rows:
        if hour < exp_hour:
            by_hour_of_day[int(hour[11:13])] += n
            total += n
    if total < 100:  # not enough history to call an hour unusual
        return
    quiet = {h for h, n in enumerate(by_hour_of_day) if n < 0.005 * total}
    result.off_hours = sorted(
        (
            dict[str, Any](hour=hour + ":00:00Z", events=n)
            for hour, n in hour_rows
            if hour >= exp_hour and int(hour[11:13]) in quiet
        ),
        key=lambda x: x["hour"],
    )[:25]


def _grade(result: Assessment, tier: str, detected_at: datetime | None) -> None:
    f = result.factors
    weight = _TIER_WEIGHT.get(tier, 1)
    if weight:
        f.append(
            Factor(
                "tier",
                weight,
                f"The key is {tier}-tier.",
                f"该密钥属于{ {'high': '高', 'medium': '中'}.get(tier, tier) }级。",
            )
        )
    sensitive = [d for d in result.data if d["class"] in SENSITIVE_CLASSES]
    records = sum(int(d["records"]) for d in sensitive)
    if sensitive:
        classes = sorted({d["class"] for d in sensitive})
        f.append(
            Factor(
                "data",
                2 if records >= 10_000 else 1,
                f"It protects {records:,} records of sensitive data ({', '.join(classes)}).",
                f"该密钥保护 {records:,} 条敏感数据记录（{'、'.join(classes)}）。",
            )
        )
    misuse_ips = [s for s in result.new_source_ips if s["ok"] > 0]
    if misuse_ips:
        f.append(
            Factor(
                "new-source-ip",
                3,
                f"{len(misuse_ips)} source IP(s) never seen before the exposure used the key successfully "
                f"(first: {misuse_ips[0]['value']}).",
                f"暴露后有 {len(misuse_ips)} 个此前从未出现的来源 IP 成功使用了该密钥"
                f"（首个：{misuse_ips[0]['value']}）。",
            )
        )
    if result.new_actors or result.new_user_agents:
        f.append(
            Factor(
                "new-client",
                1,
                f"{len(result.new_actors)} new client(s) and {len(result.new_user_agents)} new user agent(s) appeared.",
                f"出现了 {len(result.new_actors)} 个新客户端和 {len(result.new_user_agents)} 个新用户代理。",
            )
        )
    if result.bursts:
        top = result.bursts[0]
        f.append(
            Factor(
                "burst",
                2,
                f"Use peaked at {top['events']} calls in one minute ({top['minute']}), above the baseline threshold "
                f"of {top['threshold']:.0f}.",
                f"使用量在 {top['minute']} 一分钟内达到 {top['events']} 次，超过基线阈值 {top['threshold']:.0f}。",
            )
        )
    if result.off_hours:
        f.append(
            Factor(
                "off-hours",
                1,
                f"The key was used in {len(result.off_hours)} hour(s) when it is normally idle.",
                f"该密钥在通常空闲的 {len(result.off_hours)} 个小时内被使用。",
            )
        )
    refused = sum(r["events"] for r in result.refused)
    if refused:
        f.append(
            Factor(
                "refused",
                1,
                f"{refused} calls were refused after the exposure (probing or blocked use).",
                f"暴露后有 {refused} 次调用被拒绝（试探或已被阻止的使用）。",
            )
        )
    if detected_at is not None and detected_at - result.exposed_at > timedelta(hours=24):
        hours = int((detected_at - result.exposed_at).total_seconds() // 3600)
        f.append(
            Factor(
                "dwell-time",
                1,
                f"The key was exposed for {hours} hours before detection.",
                f"该密钥在被发现前已暴露 {hours} 小时。",
            )
        )
    score = sum(x.weight for x in f)
    misuse = any(x.name in ("new-source-ip", "burst") for x in f)
    result.grade = "high" if score >= 6 or (misuse and sensitive) else "medium" if score >= 3 else "low"
