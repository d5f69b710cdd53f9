"""The response steps that act on the vault: contain, assess, rotate + re-wrap.

Each step does the work through the vault (so it is audited), records its
evidence on the incident's playbook task, and moves the incident's status
forward. Steps are idempotent: rerunning one after a crash finishes the work
without doing anything twice (versions already compromised stay so, items
already re-wrapped are skipped, a rotation already done is not repeated).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from keyguard.assess.engine import Assessment, assess
from keyguard.audit.log import format_ts
from keyguard.crypto import envelope
from keyguard.data.inventory import DataInventory
from keyguard.errors import ConflictError, KeyStateError
from keyguard.incident.model import Incident, Status
from keyguard.incident.service import IncidentService
from keyguard.response.block import block_versions, target_versions
from keyguard.store.tables import AuditEvent, Client
from keyguard.store.tables import DataItem as DataItemRow
from keyguard.vault.clients import ClientService
from keyguard.vault.lifecycle import VersionState
from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault

Progress = Callable[[int, int], None]


@dataclass
class Responder:
    """Runs response steps for incidents on one vault."""

    vault: Vault
    incidents: IncidentService
    principal: Principal

    # ----------------------------------------------------------------- helpers
    def affected(self, incident: Incident) -> list[tuple[str, list[int]]]:
        """(key, versions) pairs the incident covers; no version means every usable one."""
        return [(ref.name, target_versions(self.vault, ref.name, ref.version)) for ref in incident.keys]

    def complete_action(self, incident_id: int, action: str, note: str, evidence: dict[str, Any]) -> None:
        """Mark the playbook tasks of ``action`` done, with the evidence of what was done."""
        incident = self.incidents.get(incident_id)
        for task in incident.tasks:
            if task.action == action and task.done_at is None:
                self.incidents.complete_task(incident_id, task.id, note, evidence, by=self.principal.actor)

    def advance(self, incident_id: int, status: Status, evidence: dict[str, Any]) -> None:
        """Move the incident forward to ``status`` unless it is already there or beyond."""
        incident = self.incidents.get(incident_id)
        if incident.status.rank < status.rank:
            self.incidents.advance_status(incident_id, status, evidence, actor=self.principal.actor)

    # ----------------------------------------------------------------- step 1
    def contain(self, incident_id: int, reversible: bool = False, suspend_clients: bool = False) -> dict[str, Any]:
        """Block every affected version, suspend clients that used it since the exposure, prove it dead."""
        started = time.perf_counter()
        incident = self.incidents.get(incident_id)
        target = VersionState.DISABLED if reversible else VersionState.COMPROMISED
        refs = [(k.name, k.version) for k in incident.keys]
        blocked = block_versions(self.vault, self.principal, refs, target, f"incident {incident_id}: containment")
        contained_in = time.perf_counter() - started
        self.complete_action(
            incident_id,
            "vault.compromise",
            f"{len(blocked)} version(s) {target.value}",
            {"versions": blocked},
        )
        suspended = self._suspend_users(incident) if suspend_clients else []
        if suspend_clients:
            self.complete_action(
                incident_id,
                "clients.suspend",
                f"{len(suspended)} client(s) suspended",
                {"clients": suspended},
            )
        proofs = self.prove_dead(incident)
        self.complete_action(incident_id, "vault.verify-dead", "every leaked version refuses use", {"proofs": proofs})
        evidence = {
            "versions": blocked,
            "suspended": suspended,
            "proofs": proofs,
            "seconds": round(contained_in, 4),
            "alerts_linked": _link_alerts(self.vault, incident),
        }
        self.advance(incident_id, Status.CONTAINED, evidence)
        return evidence

    def _suspend_users(self, incident: Incident) -> list[str]:
        """Clients whose calls used an affected key after the exposure (keyguard's own log)."""
        names: set[str] = set()
        since = format_ts(incident.exposed_at)
        with self.vault.engine.connect() as conn:
            clients = set(
                conn.execute(select(Client.name).where(Client.status == "active", Client.role == "service")).scalars()
            )
            for ref in incident.keys:
                query = select(AuditEvent.actor).distinct().where(AuditEvent.key == ref.name, AuditEvent.ts >= since)
                if ref.version is not None:
                    query = query.where(AuditEvent.version == ref.version)
                names.update(a for a in conn.execute(query).scalars() if a in clients)
        service = ClientService(self.vault)
        for name in sorted(names):
            service.set_status(self.principal, name, "suspended", f"incident {incident.id}: used the leaked key")
        return sorted(names)

    def prove_dead(self, incident: Incident) -> list[dict[str, Any]]:
        """Attempt a real operation with each leaked version through the vault; record the refusal."""
        probe = Principal(name=f"keyguard:probe:incident-{incident.id}", role="admin", extra={"probe": "1"})
        proofs: list[dict[str, Any]] = []
        for name, versions in self.affected(incident):
            info = self.vault.key_info(name)
            for version in versions:
                try:
                    if info.purpose == "encrypt":
                        # A syntactically valid ciphertext naming the leaked version: the state check refuses first.
                        fake = envelope.Ciphertext(name, version, b"\0" * 40).text()
                        self.vault.decrypt(probe, fake)
                    else:
                        self.vault.verify(probe, name, b"probe", b"\0" * 64, version)
                except KeyStateError as exc:
                    proofs.append(
                        {
                            "key": name,
                            "version": version,
                            "refused": True,
                            "reason": str(exc),
                            "at": format_ts(self.vault.clock.now()),
                        }
                    )
                    continue
                except Exception as exc:  # noqa: BLE001 - any other answer means the version was usable
                    proofs.append(
                        {
                            "key": name,
                            "version": version,
                            "refused": False,
                            "reason": type(exc).__name__,
                        }
                    )
                    continue
                proofs.append(
                    {
                        "key": name,
                        "version": version,
                        "refused": False,
                        "reason": "operation succeeded",
                    }
                )
        dead = all(p["refused"] for p in proofs)
        if not dead:
            raise ConflictError("a leaked version still answers", hint="contain the incident first")
        return proofs

    # ----------------------------------------------------------------- step 2
    def assess(self, incident_id: int, baseline: timedelta = timedelta(days=30)) -> list[Assessment]:
        """Replay the audit log since the exposure against the baseline; grade and record the risk.

        What was exposed stays exposed: the items under the leaked versions are kept by name
        in ``impact["data_items"]`` (with their version at exposure), and a later assessment
        adds to that set, never shrinks it (after the re-wrap they are under the new version,
        but they were exposed all the same).
        """
        incident = self.incidents.get(incident_id)
        exposed = exposed_items(self.vault, incident, self.affected(incident))
        results: list[Assessment] = []
        for name, versions in self.affected(incident):
            info = self.vault.key_info(name)
            data = summarize_items([i for i in exposed if i["key"] == name])
            results.append(
                assess(
                    self.vault.engine,
                    name,
                    incident.exposed_at,
                    now=self.vault.clock.now(),
                    versions=versions,
                    tier=info.tier,
                    baseline=baseline,
                    detected_at=incident.detected_at,
                    data=data,
                )
            )
        grade_rank = {"low": 0, "medium": 1, "high": 2}
        worst = max(results, key=lambda a: grade_rank[a.grade])
        classes = sorted({d["class"] for a in results for d in a.data})
        impact: dict[str, Any] = {
            "grade": worst.grade,
            "factors": [f.to_dict() for a in results for f in a.factors],
            "assessments": [a.to_dict() for a in results],
            "anomalies": _anomalies(results),
            "data": [dict(d, key=a.key) for a in results for d in a.data],
            "data_items": exposed,
            "records": sum(int(i["records"]) for i in exposed),
            "own_operations": [dict(o, key=a.key) for a in results for o in a.own_operations],
        }
        flags = ["high-risk"] if worst.grade == "high" else []
        self.incidents.update_facts(
            incident_id,
            severity=worst.grade,
            impact=impact,
            add_data_classes=classes,
            add_flags=flags,
            actor=self.principal.actor,
        )
        self.complete_action(
            incident_id,
            "assess.run",
            f"risk {worst.grade}: {len(impact['anomalies'])} anomalies",
            {
                "grade": worst.grade,
                "events_after_exposure": sum(a.events_after_exposure for a in results),
            },
        )
        own = impact["own_operations"]
        if own:
            self.incidents.record(
                incident_id,
                "keyguard",
                f"{sum(o['events'] for o in own)} of keyguard's own operations since the exposure "
                "(probes, response steps, local CLI), not counted as the attacker's",
                {"operations": own},
                actor=self.principal.actor,
            )
        self.advance(incident_id, Status.ASSESSED, {"grade": worst.grade})
        return results

    # ----------------------------------------------------------------- step 3
    def rotate(
        self, incident_id: int, algorithm: str | None = None, progress: Progress | None = None
    ) -> dict[str, Any]:
        """New version for every affected key (once), then re-wrap every registered item (resumable)."""
        incident = self.incidents.get(incident_id)
        inventory = DataInventory(self.vault)
        rotated: list[dict[str, Any]] = []
        rewrapped: list[dict[str, Any]] = []
        for name, versions in self.affected(incident):
            rotated.append(self._rotate_once(incident, name, versions, algorithm))
            report = inventory.rewrap(self.principal, name, progress=progress)
            rewrapped.append(report.to_dict())
        self.complete_action(
            incident_id,
            "vault.rotate",
            ", ".join(f"{r['key']} v{r['version']} ({r['algorithm']})" for r in rotated),
            {"rotated": rotated},
        )
        self.complete_action(
            incident_id,
            "data.rewrap",
            f"{sum(r['rewrapped'] for r in rewrapped)} items re-wrapped",
            {"rewrap": rewrapped},
        )
        evidence = {"rotated": rotated, "rewrap": rewrapped}
        self.advance(incident_id, Status.ROTATED, evidence)
        return evidence

    def _rotate_once(self, incident: Incident, name: str, versions: list[int], algorithm: str | None) -> dict[str, Any]:
        """The new version of ``name`` for this incident: made once, reused by every rerun.

        The intended version number is written on the incident's timeline before
        the version is made; a rerun after a crash finds it there and reuses the
        version instead of making one more (a key named without a version covers
        every usable one, the new one included).
        """
        planned = _planned_version(incident, name)
        info = self.vault.key_info(name)
        leaked = [v for v in versions if v != planned]
        if planned is not None and planned in info.versions:
            made = info.versions[planned]
            return {"key": name, "version": made.version, "algorithm": made.algorithm, "new": False}
        active = info.active
        if active is not None and active.version not in leaked:
            return {"key": name, "version": active.version, "algorithm": active.algorithm, "new": False}
        intended = info.latest + 1
        self.incidents.record(
            incident.id,
            ROTATION_PLANNED,
            f"{name}: rotating to version {intended}",
            {"key": name, "version": intended, "replaces": leaked},
            actor=self.principal.actor,
        )
        info = self.vault.rotate(self.principal, name, algorithm)
        active = info.active
        assert active is not None
        if active.version != intended:  # someone else rotated in between: record what this run made
            self.incidents.record(
                incident.id,
                ROTATION_PLANNED,
                f"{name}: rotated to version {active.version}",
                {"key": name, "version": active.version, "replaces": leaked},
                actor=self.principal.actor,
            )
        return {"key": name, "version": active.version, "algorithm": active.algorithm, "new": True}


ROTATION_PLANNED = "rotation-planned"


def _planned_version(incident: Incident, name: str) -> int | None:
    """The version this incident's rotation of ``name`` makes (the last one written), if any."""
    planned: int | None = None
    for entry in incident.timeline:
        if entry.kind == ROTATION_PLANNED and entry.data.get("key") == name:
            planned = int(entry.data["version"])
    return planned


def exposed_items(vault: Vault, incident: Incident, affected: list[tuple[str, list[int]]]) -> list[dict[str, Any]]:
    """The items exposed by the leak, by name: those the incident already recorded, plus the
    items now under a leaked version (name, key, class, records, version at exposure)."""
    known: dict[str, dict[str, Any]] = {}
    for raw in incident.impact.get("data_items") or []:
        if isinstance(raw, dict) and raw.get("name"):
            known[str(raw["name"])] = dict(raw)
    with vault.engine.connect() as conn:
        for name, versions in affected:
            if not versions:
                continue
            rows = conn.execute(
                select(DataItemRow.name, DataItemRow.data_class, DataItemRow.records, DataItemRow.version).where(
                    DataItemRow.key_name == name,
                    DataItemRow.version.in_(versions),
                    DataItemRow.is_deleted.is_(False),
                )
            )
            for item, data_class, records, version in rows:
                known.setdefault(
                    str(item),
                    {
                        "name": str(item),
                        "key": name,
                        "data_class": str(data_class),
                        "records": int(records),
                        "version": int(version),
                    },
                )
    return sorted(known.values(), key=lambda i: (str(i["key"]), str(i["name"])))


def summarize_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items and records per (version at exposure, class): the assessment's ``data``."""
    groups: dict[tuple[int, str], list[int]] = {}
    for i in items:
        slot = groups.setdefault((int(i["version"]), str(i["data_class"])), [0, 0])
        slot[0] += 1
        slot[1] += int(i["records"])
    return [{"version": v, "class": c, "items": n, "records": r} for (v, c), (n, r) in sorted(groups.items())]


def _link_alerts(vault: Vault, incident: Incident) -> int:
    """Attach the open alerts of the incident's keys to it (monitoring's alerts table)."""
    from keyguard.monitor.alerts import link_open_alerts

    return sum(link_open_alerts(vault.engine, ref.name, incident.id) for ref in incident.keys)


def _anomalies(results: list[Assessment]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for a in results:
        for s in a.new_source_ips:
            found.append(
                {
                    "at": s["first"],
                    "kind": "new-source-ip",
                    "severity": "high" if s["ok"] else "medium",
                    "description": f"{a.key}: new source IP {s['value']} ({s['events']} calls, {s['ok']} succeeded)",
                }
            )
        for s in a.new_actors:
            found.append(
                {
                    "at": s["first"],
                    "kind": "new-client",
                    "severity": "medium",
                    "description": f"{a.key}: new client {s['value']} ({s['events']} calls)",
                }
            )
        for s in a.new_user_agents:
            found.append(
                {
                    "at": s["first"],
                    "kind": "new-user-agent",
                    "severity": "low",
                    "description": f"{a.key}: new user agent {s['value']!r} ({s['events']} calls)",
                }
            )
        for b in a.bursts[:5]:
            found.append(
                {
                    "at": b["minute"],
                    "kind": "burst",
                    "severity": "high",
                    "description": f"{a.key}: {b['events']} calls in one minute (threshold {b['threshold']:.0f})",
                }
            )
        for h in a.off_hours[:5]:
            found.append(
                {
                    "at": h["hour"],
                    "kind": "off-hours",
                    "severity": "medium",
                    "description": f"{a.key}: {h['events']} calls in a normally idle hour",
                }
            )
        for r in a.refused[:5]:
            found.append(
                {
                    "at": r["first"],
                    "kind": "refused",
                    "severity": "medium",
                    "description": f"{a.key}: {r['events']} {r['result']} calls ({r['reason'] or 'no reason'})",
                }
            )
    return sorted(found, key=lambda x: str(x["at"]))
