"""Vault/OpenBao KV version 2 secrets (kind ``kv``, id the path under ``kv_mount``)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from typing_extensions import override

from keyguard.clock import Clock
from keyguard.connectors.base import (
    Adapter,
    Identified,
    Inventoried,
    Outcome,
    Proof,
    Rotation,
    Step,
    UsageRecord,
)
from keyguard.connectors.checkpoint import Checkpoint
from keyguard.connectors.deliver import replace_in_files
from keyguard.connectors.refs import Ref
from keyguard.connectors.secret import Secret
from keyguard.connectors.vault_client import VaultClient, entry_time
from keyguard.connectors.vault_token import _at

SECRET_FIELDS = ("password", "secret", "token", "api_key", "key", "value")


def _field_to_rotate(data: dict[str, Any]) -> str:
    for name in SECRET_FIELDS:
        if name in data:
            return name
    return next(iter(data)) if len(data) == 1 else "password"


class VaultKv(Adapter):
    """A KV v2 secret: the version holding a leaked value found in memory, a new version, old ones destroyed."""

    kind = "kv"
    steps = frozenset({Step.IDENTIFY, Step.INVENTORY, Step.PROVE_DEAD, Step.USAGE_SINCE, Step.ROTATE,
                       Step.DELIVER, Step.RETIRE})
    manual: ClassVar[dict[Step, str]] = {
        Step.CONTAIN: "the value opens another system: revoke it there (its own connector), then rotate here",
        Step.CONSUMERS_SWITCHED: "consumers reading the latest version switch on their next read; "
                                 "check the audit log for reads of the path since the rotation",
    }

    def __init__(self, connector: str, vault: VaultClient, clock: Clock | None = None) -> None:
        super().__init__(connector, clock)
        self.vault = vault
        self.mount = vault.kv_mount

    def _walk(self, prefix: str = "") -> Iterator[str]:
        reply = self.vault.probe("LIST", f"{self.mount}/metadata/{prefix}")
        for key in reply.body.get("data", {}).get("keys", []) if reply.status == 200 else []:
            if str(key).endswith("/"):
                yield from self._walk(prefix + str(key))
            else:
                yield prefix + str(key)

    def _metadata(self, path: str, ref: str | None = None) -> dict[str, Any]:
        return dict(self.vault.request("GET", f"{self.mount}/metadata/{path}", ref=ref).get("data", {}))

    def _version(self, path: str, version: int) -> dict[str, Any] | None:
        reply = self.vault.probe("GET", f"{self.mount}/data/{path}?version={version}")
        data = (reply.body.get("data") or {}).get("data") if reply.status == 200 else None
        return dict(data) if isinstance(data, dict) else None

    def _live_versions(self, meta: dict[str, Any]) -> list[int]:
        versions = meta.get("versions", {})
        return sorted(int(v) for v, info in versions.items() if not info.get("destroyed"))

    def _holding(self, path: str, leaked: Secret, meta: dict[str, Any]) -> list[tuple[int, str]]:
        hits = []
        for version in self._live_versions(meta):
            data = self._version(path, version) or {}
            hits += [(version, k) for k, v in data.items() if isinstance(v, str) and leaked.matches(v)]
        return hits

    @override
    def identify(self, leaked: Secret) -> Identified | None:
        """The path, version and field whose value equals the leaked one (compared in memory)."""
        for path in self._walk():
            hits = self._holding(path, leaked, self._metadata(path))
            if hits:
                return Identified(self.ref(path), f"{self.mount}/{path}",
                                  {"versions": [v for v, _ in hits], "field": hits[0][1]})
        return None

    @override
    def inventory(self) -> list[Inventoried]:
        """Every secret of the mount with its current version and times."""
        out = []
        for path in self._walk():
            meta = self._metadata(path)
            out.append(Inventoried(self.ref(path), f"v{meta.get('current_version')}", _at(meta.get("created_time")),
                                   _at(meta.get("updated_time")), {"versions": self._live_versions(meta)}))
        return out

    @override
    def prove_dead(self, ref: Ref, leaked: Secret | None = None, samples: Sequence[str] = ()) -> Proof:
        """Dead here when no version that is not destroyed still holds the leaked value."""
        if leaked is None:
            return Proof(ref, self.clock.now(), False, ("no leaked value given",))
        hits = self._holding(ref.id, leaked, self._metadata(ref.id, str(ref)))
        evidence = (f"versions still holding the leaked value: {sorted({v for v, _ in hits}) or 'none'}",)
        return Proof(ref, self.clock.now(), not hits, evidence)

    @override
    def usage_since(self, ref: Ref, since: datetime) -> list[UsageRecord]:
        """Audit-device entries on the secret's data and metadata paths since ``since``."""
        paths = {f"{self.mount}/data/{ref.id}", f"{self.mount}/metadata/{ref.id}"}
        return [UsageRecord(ref, "vault-audit", entry_time(e), e) for e in self.vault.audit_entries(since)
                if (e.get("request") or {}).get("path") in paths]

    @override
    def rotate(self, ref: Ref, *, ciphertexts: Sequence[str] = (), checkpoint: Path | None = None) -> Rotation:
        """A new version with the secret field replaced (check-and-set); a killed run's version is reused."""
        cp = Checkpoint(checkpoint, ref=str(ref), step="rotate") if checkpoint else None
        meta = self._metadata(ref.id, str(ref))
        current = int(meta.get("current_version", 0))
        base = int(cp.state["base_version"]) if cp and "base_version" in cp.state else current
        old = self._version(ref.id, base) or {}
        field = _field_to_rotate(old)
        if current > base:  # a killed run wrote it already: read it back
            new_version, value = current, str((self._version(ref.id, current) or {}).get(field, ""))
        else:
            if cp is not None:
                cp.save(base_version=base, field=field)
            value = secrets.token_urlsafe(32)
            reply = self.vault.request("POST", f"{self.mount}/data/{ref.id}",
                                       {"options": {"cas": base}, "data": {**old, field: value}}, ref=str(ref))
            new_version = int(reply.get("data", {}).get("version", base + 1))
        if cp is not None:
            cp.save(phase="done", new_version=new_version)
        return Rotation(ref, ref, self.clock.now(), Secret(value),
                        detail={"old_version": base, "new_version": new_version, "field": field})

    @override
    def deliver(self, rotation: Rotation, targets: Sequence[Path], old: Secret | None = None) -> Outcome:
        """Consumers reading the latest version have it; files holding the old value are rewritten."""
        changed: list[str] = []
        if old is not None and rotation.new_secret is not None and targets:
            changed = replace_in_files(targets, old.reveal(), rotation.new_secret)
        return Outcome(rotation.ref, Step.DELIVER, self.clock.now(),
                       ("latest version holds the new value", *(f"wrote {p}" for p in changed)), {"files": changed})

    @override
    def retire(self, rotation: Rotation) -> Outcome:
        """Destroy every version older than the new one (their data is erased; metadata stays)."""
        new_version = int(rotation.detail["new_version"])
        meta = self._metadata(rotation.ref.id, str(rotation.ref))
        old = [v for v in self._live_versions(meta) if v < new_version]
        if old:
            self.vault.request("POST", f"{self.mount}/destroy/{rotation.ref.id}", {"versions": old},
                               ref=str(rotation.ref))
        return Outcome(rotation.ref, Step.RETIRE, self.clock.now(), (f"versions {old or 'none'} destroyed",),
                       {"destroyed": old})
