"""The exposure window of a leaked dynamic credential: it could only be used while its lease lived.

An assessment of ``pg/role/kg_readonly_…`` (or a Redis user) replays the system's record
of use from the exposure to now; for a credential keyguard issued, the window is cut to
the lease: it starts no earlier than the issue and ends when the lease ended (revoked,
expired) — what happened outside it was not done with this credential.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from keyguard.clock import format_time
from keyguard.connectors.leases import lease_window


def _at(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def credential_window(engine: Engine, username: str, exposed_at: datetime, now: datetime) -> dict[str, Any] | None:
    """``{"lease_id", "issued_at", "expires_at", "revoked_at", "from", "until", "usable"}`` or None.

    ``from``/``until`` is the part of [exposed_at, now] in which the credential existed;
    ``usable`` is False when the lease had ended before the exposure (nothing to assess).
    """
    lease = lease_window(engine, username)
    if lease is None:
        return None
    issued = _at(lease["issued_at"]) or exposed_at
    ended = _at(lease["revoked_at"]) or _at(lease["expires_at"]) or now
    start, end = max(exposed_at, issued), min(ended, now)
    return {"lease_id": lease["lease_id"], "issued_at": lease["issued_at"], "expires_at": lease["expires_at"],
            "revoked_at": lease["revoked_at"], "from": format_time(start), "until": format_time(max(start, end)),
            "usable": start < end}
