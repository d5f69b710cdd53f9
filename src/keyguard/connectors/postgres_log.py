"""Connection lines of a PostgreSQL server log (``log_connections = on``) as SPEC §5 events.

With the default ``log_line_prefix = '%m [%p] '`` a login is two lines of one pid::

    2026-12-03 09:10:00.123 UTC [4242] LOG:  connection received: host=127.0.0.1 port=50412
    2026-12-03 09:10:00.130 UTC [4242] LOG:  connection authorized: user=billing database=app …

and a refused one ends with ``FATAL:  password authentication failed for user "billing"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from keyguard.clock import format_time

_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) (?P<tz>[A-Z]{2,5}|[+-]\d\d(?::?\d\d)?) "
    r"\[(?P<pid>\d+)\][^A-Z]*(?P<level>[A-Z]+):\s+(?P<text>.*)$"
)
_RECEIVED = re.compile(r"^connection received: host=(?P<host>\S+)")
_AUTHORIZED = re.compile(r"^connection authorized: user=(?P<user>\S+)(?: database=(?P<db>\S+))?"
                         r"(?:.*application_name=(?P<app>\S+))?")
_FAILED = re.compile(r'^password authentication failed for user "(?P<user>[^"]+)"')


def _at(ts: str, tz: str) -> datetime | None:
    try:
        naive = datetime.fromisoformat(ts)
    except ValueError:
        return None
    if tz in {"UTC", "GMT", "Z"}:
        return naive.replace(tzinfo=UTC)
    match = re.match(r"^([+-])(\d\d):?(\d\d)?$", tz)
    if match:
        sign = 1 if match.group(1) == "+" else -1
        offset = timedelta(hours=int(match.group(2)), minutes=int(match.group(3) or 0)) * sign
        return naive.replace(tzinfo=timezone(offset)).astimezone(UTC)
    return None  # a zone abbreviation we cannot place


def connection_events(lines: Iterable[str], role: str, ref: str, since: datetime) -> list[dict[str, Any]]:
    """The role's logins (``ok``) and refused password logins (``denied``) since ``since``."""
    hosts: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for raw in lines:
        line = _LINE.match(raw.rstrip("\n"))
        if line is None:
            continue
        pid, text = line.group("pid"), line.group("text")
        received = _RECEIVED.match(text)
        if received:
            hosts[pid] = received.group("host")
            continue
        authorized, failed = _AUTHORIZED.match(text), _FAILED.match(text)
        hit = authorized or failed
        if hit is None or hit.group("user") != role:
            continue
        at = _at(line.group("ts"), line.group("tz"))
        if at is None or at < since:
            continue
        out.append({
            "ts": format_time(at), "actor": f"postgresql:{role}", "source_ip": hosts.get(pid),
            "user_agent": authorized.group("app") if authorized else None,
            "op": "postgresql:login", "key": ref, "version": None,
            "result": "ok" if authorized else "denied",
            "reason": f"database {authorized.group('db')}" if authorized else "password authentication failed",
            "request_id": f"pid-{pid}",
        })
    return out
