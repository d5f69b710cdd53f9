"""The tripwire: any use of a compromised version becomes an alert on its incidents."""

from __future__ import annotations

from keyguard.incident.service import IncidentService
from keyguard.vault.service import Vault


def install_tripwire(vault: Vault, incidents: IncidentService) -> None:
    """Record any use of a compromised version as an alert on the incidents covering it."""

    def hook(principal: object, key: str, version: int, op: str) -> None:
        actor = getattr(principal, "actor", "?")
        for incident in incidents.list(key=key):
            incidents.record(
                incident.id,
                "alert",
                f"tripwire: {actor} attempted {op} with compromised {key} v{version}",
                {"severity": "high", "actor": actor, "op": op, "key": key, "version": version},
            )

    vault.tripwire_hooks.append(hook)
