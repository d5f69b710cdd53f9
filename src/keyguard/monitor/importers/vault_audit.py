"""HashiCorp Vault / OpenBao file audit device: one JSON entry per line.

Each call is logged twice, a ``request`` entry and a ``response`` entry sharing
``request.id``; they become ONE event (time and line of the request, result and
key version from the response). Tokens and accessors are already HMAC'd by the
audit device (``hmac-sha256:…``) and are used as the actor as they are.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import IO, Any

import orjson

from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.importers.base import ImportOptions, Parsed, Rejected, iter_lines, text
from keyguard.monitor.timeutil import TimeFormatError, normalize_ts

MAX_PENDING = 10_000
_TRANSIT_OPS = {
    "encrypt": "encrypt",
    "decrypt": "decrypt",
    "rewrap": "rewrap",
    "sign": "sign",
    "verify": "verify",
    "hmac": "mac",
    "export": "export",
    "backup": "backup",
    "restore": "restore",
}
_KEY_OPS = {
    "create": "key-create",
    "update": "key-create",
    "read": "key-read",
    "delete": "key-delete",
}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def map_path(mount_type: str, mount_point: str, path: str, operation: str) -> tuple[str, str | None]:
    """``(op, key)`` of a request path; transit paths name the key, others only the op."""
    if mount_type == "transit" and path.startswith(mount_point):
        parts = [p for p in path[len(mount_point) :].split("/") if p]
        if len(parts) >= 2 and parts[0] in _TRANSIT_OPS:
            name = parts[2] if parts[0] == "export" and len(parts) >= 3 else parts[1]
            return _TRANSIT_OPS[parts[0]], name
        if len(parts) >= 3 and parts[0] == "datakey":
            return "generate-data-key", parts[2]
        if len(parts) >= 2 and parts[0] == "keys":
            if len(parts) >= 3:
                return f"key-{parts[2]}"[:64], parts[1]
            return _KEY_OPS.get(operation, f"key-{operation}"), parts[1]
        if parts:
            return parts[0][:64], None
    return f"{operation} {path}"[:64], None


def _result(entry: dict[str, Any]) -> tuple[str, str | None]:
    error = entry.get("error")
    if not error:
        return "ok", None
    message = " ".join(str(error).replace("*", " ").split())
    lowered = message.lower()
    denied = any(word in lowered for word in ("permission denied", "missing client token", "invalid token"))
    return ("denied" if denied else "error"), message[:4000]


def _event(entry: dict[str, Any], ts: str, line: int, name: str | None, request_only: bool) -> MonitorEvent:
    request = _dict(entry.get("request"))
    auth = _dict(entry.get("auth"))
    response = _dict(entry.get("response"))
    op, key = map_path(
        str(request.get("mount_type") or ""),
        str(request.get("mount_point") or ""),
        str(request.get("path") or ""),
        str(request.get("operation") or ""),
    )
    result, reason = _result(entry)
    if request_only and result == "ok":
        reason = "no response entry logged"
    version = _dict(response.get("data")).get("key_version")
    headers = _dict(request.get("headers"))
    agent = headers.get("user-agent") or headers.get("User-Agent")
    if isinstance(agent, list):
        agent = agent[0] if agent else None
    actor = (
        auth.get("accessor")
        or request.get("client_token_accessor")
        or request.get("client_token")
        or auth.get("display_name")
        or ""
    )
    request_id = request.get("id")
    return MonitorEvent(
        ts=ts,
        op=op,
        result=result,
        key=key[:256] if key else None,
        version=version if isinstance(version, int) and not isinstance(version, bool) else None,
        actor=str(actor)[:256],
        source_ip=text(request.get("remote_address"), 64),
        user_agent=text(agent, 512),
        reason=reason,
        request_id=text(request_id, 128),
        source="vault-audit",
        source_line=line,
        source_file=name,
        natural_id=request_id if isinstance(request_id, str) else None,
    )


def parse(stream: IO[bytes], *, name: str | None, options: ImportOptions) -> Iterator[Parsed]:
    """Parse audit entries, pairing request and response by ``request.id``."""
    pending: OrderedDict[str, tuple[int, str, dict[str, Any]]] = OrderedDict()
    for number, line in iter_lines(stream):
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield Rejected(number, "invalid JSON", name)
            continue
        if not isinstance(entry, dict) or entry.get("type") not in ("request", "response"):
            yield Rejected(number, "not a request or response audit entry", name)
            continue
        request = _dict(entry.get("request"))
        request_id = request.get("id")
        try:
            ts = normalize_ts(str(entry.get("time") or ""))
        except TimeFormatError as exc:
            yield Rejected(number, str(exc), name)
            continue
        if not isinstance(request_id, str) or not request_id:
            # Internal calls may carry no id: pair them by what they did instead.
            request_id = "noid\x1f{}\x1f{}\x1f{}".format(
                request.get("path"), request.get("operation"), request.get("client_token")
            )
        if entry["type"] == "request":
            pending[request_id] = (number, ts, entry)
            if len(pending) > MAX_PENDING:
                _, (old_line, old_ts, old_entry) = pending.popitem(last=False)
                yield _event(old_entry, old_ts, old_line, name, request_only=True)
            continue
        first = pending.pop(request_id, None)
        if first is None:
            yield _event(entry, ts, number, name, request_only=False)
        else:
            yield _event(entry, first[1], first[0], name, request_only=False)
    if options.is_tail:
        return  # following a file: the response entry (which repeats the request) will come
    for line_no, ts, entry in pending.values():
        yield _event(entry, ts, line_no, name, request_only=True)
