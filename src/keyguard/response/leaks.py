"""The bridge between the scanner and the vault/incidents: recognise our keys, open incidents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from keyguard.crypto.algorithms import public_fingerprint
from keyguard.incident.service import IncidentService
from keyguard.response.playbook import find_open_incident
from keyguard.vault.service import Vault


class VaultKeyIndex:
    """Answers "is this material one of our key versions?" by fingerprint only."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._by_fingerprint = vault.fingerprints()

    def _ref(self, fingerprint: str) -> Any:
        from keyguard.scan.managed import ManagedKeyRef

        hit = self._by_fingerprint.get(fingerprint)
        return ManagedKeyRef(hit[0], hit[1]) if hit else None

    def match_secret(self, raw: bytes) -> Any:
        """A secret key's version, keyed-HMAC fingerprint compared."""
        return self._ref(self._vault.secret_fingerprint(raw))

    def match_public(self, spki_der: bytes) -> Any:
        """An asymmetric key's version, by SubjectPublicKeyInfo SHA-256."""
        return self._ref(public_fingerprint(spki_der))


def open_leak_incident(
    incidents: IncidentService,
    name: str,
    version: int,
    exposed_at: datetime,
    author: str,
    commit: str,
    root_cause: str,
    location: str,
) -> str:
    """Open (or update) the incident of a leaked version found by the scanner; returns its id."""
    where = f"{location} in commit {commit[:12]}" if commit else location
    source = f"{root_cause}: {where}" + (f" by {author}" if author else "")
    evidence = {
        "commit": commit,
        "author": author,
        "location": location,
        "exposed_at": exposed_at.isoformat(),
    }
    existing = find_open_incident(incidents, [(name, version)])
    if existing is None:
        incident = incidents.open([(name, version)], exposed_at, None, source, actor="keyguard:scan")
        incidents.update_facts(
            incident.id,
            root_cause=f"{root_cause} ({where}" + (f", {author})" if author else ")"),
            actor="keyguard:scan",
        )
        incidents.record(incident.id, "trace", f"leak traced to {where}", evidence, actor="keyguard:scan")
        return str(incident.id)
    incidents.record(existing.id, "trace", f"leak also found at {where}", evidence, actor="keyguard:scan")
    return str(existing.id)


def scanner_opener(ref: Any, exposed_at: datetime, author: str, commit: str, root_cause: str, location: str) -> str:
    """The opener ``keyguard scan --open-incident`` calls, on the vault of the environment."""
    from keyguard.runtime import open_vault

    vault = open_vault()
    incidents = IncidentService(vault.engine, vault.clock)
    return open_leak_incident(incidents, ref.name, int(ref.version), exposed_at, author, commit, root_cause, location)
