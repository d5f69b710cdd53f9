"""nginx / Apache "combined" access logs, with a rule naming where the credential is.

``credential`` is ``query:NAME`` (a query-string parameter), ``header:NAME`` (a
header logged as an extra quoted field after the user agent; ``extra_fields`` lists
those fields in order) or ``user`` (the authenticated-user field). The credential
becomes the event's key as ``hmac-sha256:<hex>``: a keyed fingerprint, never the
value itself; the stored path has its query string removed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache
from typing import IO
from urllib.parse import parse_qs, urlsplit

from keyguard.errors import UsageError
from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.importers.base import ImportOptions, Parsed, Rejected, iter_lines
from keyguard.monitor.timeutil import format_ts

_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_LINE = re.compile(rf"^(\S+) (\S+) (\S+) \[([^\]]+)\] {_QUOTED} (\d{{3}}) (\S+)(?: {_QUOTED} {_QUOTED})?(.*)$")
_EXTRA = re.compile(_QUOTED)


def fingerprint(value: str, key: bytes) -> str:
    """Keyed fingerprint of a credential: ``hmac-sha256:<first 32 hex>``."""
    digest = hmac.new(key, value.encode("utf-8", "replace"), hashlib.sha256).hexdigest()
    return f"hmac-sha256:{digest[:32]}"


@lru_cache(maxsize=8192)
def _time(text: str) -> str:
    return format_ts(datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z"))


def _rule(options: ImportOptions) -> tuple[str, str]:
    rule = options.credential or ""
    kind, _, name = rule.partition(":")
    if kind == "user" and not name:
        return "user", ""
    if kind == "query" and name:
        return kind, name
    if kind == "header" and name:
        wanted = name.lower()
        if wanted not in [f.lower() for f in options.extra_fields]:
            raise UsageError(
                f"header {name!r} is not among the logged extra fields",
                hint="name the extra quoted fields of the log format with --extra-fields",
            )
        return kind, wanted
    if not rule:
        return "", ""
    raise UsageError(f"invalid credential rule {rule!r}", hint="use query:NAME, header:NAME or user")


def parse(stream: IO[bytes], *, name: str | None, options: ImportOptions) -> Iterator[Parsed]:
    """Parse combined-format lines."""
    kind, cred_name = _rule(options)
    extra_names = [f.lower() for f in options.extra_fields]
    key_bytes = options.fingerprint_key
    for number, raw in iter_lines(stream):
        match = _LINE.match(raw.decode("utf-8", "replace"))
        if match is None:
            yield Rejected(number, "not a combined log line", name)
            continue
        host, _ident, user, when, request, status, _size, _referer, agent, rest = match.groups()
        try:
            ts = _time(when)
        except ValueError:
            yield Rejected(number, "invalid time", name)
            continue
        method, _, remainder = request.partition(" ")
        target = remainder.rsplit(" ", 1)[0] if " " in remainder else remainder
        parts = urlsplit(target)
        secret: str | None = None
        if kind == "query":
            values = parse_qs(parts.query).get(cred_name)
            secret = values[0] if values else None
        elif kind == "user":
            secret = user if user != "-" else None
        elif kind == "header":
            extras = _EXTRA.findall(rest or "")
            position = extra_names.index(cred_name)
            if position < len(extras) and extras[position] not in ("-", ""):
                secret = extras[position]
        code = int(status)
        result = "ok" if code < 400 else ("denied" if code in (401, 403, 407) else "error")
        actor = "" if user == "-" or kind == "user" else user
        if kind == "user" and secret is not None:
            actor = fingerprint(secret, key_bytes)
        yield MonitorEvent(
            ts=ts,
            op=(method or "-")[:64],
            result=result,
            key=fingerprint(secret, key_bytes) if secret else None,
            actor=actor[:256],
            source_ip=host[:64],
            user_agent=(agent or None) if agent != "-" else None,
            reason=f"{code} {parts.path}"[:4000],
            source="combined",
            source_line=number,
            source_file=name,
        )
