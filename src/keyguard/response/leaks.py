"""From a scan finding of a managed key to an incident: the vault's fingerprint index the
scanner asks, and the opener that records where and when the key leaked.

The scanner knows nothing of incidents; the command line builds these from the vault of
the environment and passes them in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from keyguard.crypto.algorithms import public_fingerprint
from keyguard.incident.service import IncidentService
from keyguard.response.respond import find_open_incident
from keyguard.scan.managed import ManagedKeyRef
from keyguard.scan.model import Finding
from keyguard.vault.service import Vault

ROOT_CAUSE_GIT = "committed to version control"
ROOT_CAUSE_FILE = "stored in plaintext"

IncidentOpener = Callable[[ManagedKeyRef, datetime, str, str, str, str], str]
"""``(ref, exposed_at, author, commit, root_cause, location) -> incident id``."""


class VaultKeyIndex:
    """Answers "is this material one of our key versions?" by fingerprint only."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._by_fingerprint = vault.fingerprints()

    def _ref(self, fingerprint: str) -> ManagedKeyRef | None:
        hit = self._by_fingerprint.get(fingerprint)
        return ManagedKeyRef(hit[0], hit[1]) if hit else None

    def match_secret(self, raw: bytes) -> ManagedKeyRef | None:
        """A secret key's version, keyed-HMAC fingerprint compared."""
        return self._ref(self._vault.secret_fingerprint(raw))

    def match_public(self, spki_der: bytes) -> ManagedKeyRef | None:
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


def incident_opener(incidents: IncidentService) -> IncidentOpener:
    """The opener ``keyguard scan --open-incident`` calls, on ``incidents``."""

    def opener(ref: ManagedKeyRef, exposed_at: datetime, author: str, commit: str, cause: str, where: str) -> str:
        return open_leak_incident(incidents, ref.name, ref.version, exposed_at, author, commit, cause, where)

    return opener


def finding_time(finding: Finding) -> datetime:
    """When the finding's commit was made (now for a file finding or an unreadable date)."""
    if finding.date:
        try:
            return datetime.fromisoformat(finding.date).astimezone(UTC)
        except ValueError:
            pass
    return datetime.now(UTC)


def open_incidents_for(findings: list[Finding], opener: IncidentOpener) -> dict[ManagedKeyRef, str]:
    """Open (or update) one incident per leaked private/secret key version, exposed at the
    date of the earliest finding (the first commit that contained it)."""
    earliest: dict[ManagedKeyRef, Finding] = {}
    for finding in findings:
        if not finding.managed_key or finding.extra.get("public_only"):
            continue
        ref = ManagedKeyRef(str(finding.managed_key["name"]), int(finding.managed_key["version"]))
        current = earliest.get(ref)
        if current is None or finding_time(finding) < finding_time(current):
            earliest[ref] = finding
    opened: dict[ManagedKeyRef, str] = {}
    for ref, finding in sorted(earliest.items(), key=lambda kv: (kv[0].name, kv[0].version)):
        root_cause = ROOT_CAUSE_GIT if finding.commit else ROOT_CAUSE_FILE
        location = f"{finding.file}:{finding.line}"
        author = f"{finding.author} <{finding.email}>" if finding.author else ""
        incident = opener(ref, finding_time(finding), author, finding.commit or "", root_cause, location)
        finding.extra["incident"] = incident
        opened[ref] = incident
    return opened
