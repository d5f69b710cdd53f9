"""Vault/OpenBao transit keys (kind ``transit``, id the key name under ``transit_mount``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from typing_extensions import override

from keyguard.clock import Clock
from keyguard.connectors.base import Adapter, Inventoried, Outcome, Proof, Rotation, Step, UsageRecord
from keyguard.connectors.checkpoint import Checkpoint
from keyguard.connectors.errors import StepStateError
from keyguard.connectors.refs import Ref
from keyguard.connectors.secret import Secret
from keyguard.connectors.vault_client import VaultClient, entry_time

BATCH = 100


def ciphertext_version(text: str) -> int:
    """N of ``vault:vN:…``."""
    try:
        return int(text.split(":", 2)[1].removeprefix("v"))
    except (IndexError, ValueError):
        raise StepStateError(f"not a transit ciphertext: {text[:16]}…") from None


class VaultTransit(Adapter):
    """A transit key: rotated with old versions refused, ciphertexts rewrapped (resumable), old versions trimmed."""

    kind = "transit"
    steps = frozenset({Step.INVENTORY, Step.CONTAIN, Step.PROVE_DEAD, Step.USAGE_SINCE, Step.ROTATE, Step.RETIRE})
    manual: ClassVar[dict[Step, str]] = {
        Step.IDENTIFY: "a transit key never leaves Vault: look for the token that used it (kind token)",
        Step.DELIVER: "nothing to deliver: consumers use the key by name and get the latest version",
        Step.CONSUMERS_SWITCHED: "check the audit log for decrypts of old-version ciphertexts since the rotation",
    }

    def __init__(self, connector: str, vault: VaultClient, clock: Clock | None = None) -> None:
        super().__init__(connector, clock)
        self.vault = vault
        self.mount = vault.transit_mount

    def key(self, name: str, ref: str | None = None) -> dict[str, Any]:
        """The key's policy: ``latest_version``, ``min_decryption_version``, ``min_encryption_version``."""
        return dict(self.vault.request("GET", f"{self.mount}/keys/{name}", ref=ref).get("data", {}))

    def _config(self, name: str, ref: str, **settings: int) -> None:
        self.vault.request("POST", f"{self.mount}/keys/{name}/config", settings, ref=ref)

    @override
    def inventory(self) -> list[Inventoried]:
        """Every transit key with its version window."""
        names = self.vault.probe("LIST", f"{self.mount}/keys").body.get("data", {}).get("keys", [])
        out = []
        for name in names:
            key = self.key(str(name))
            out.append(Inventoried(self.ref(str(name)), f"v{key.get('latest_version')}", None, None, {
                "type": key.get("type"), "min_decryption_version": key.get("min_decryption_version"),
                "min_encryption_version": key.get("min_encryption_version"), "exportable": key.get("exportable")}))
        return out

    @override
    def contain(self, ref: Ref) -> Outcome:
        """Rotate, then raise ``min_decryption_version`` and ``min_encryption_version`` to the new version."""
        before = int(self.key(ref.id, str(ref))["latest_version"])
        self.vault.request("POST", f"{self.mount}/keys/{ref.id}/rotate", ref=str(ref))
        latest = int(self.key(ref.id, str(ref))["latest_version"])
        self._config(ref.id, str(ref), min_decryption_version=latest, min_encryption_version=latest)
        return Outcome(ref, Step.CONTAIN, self.clock.now(),
                       (f"rotated to v{latest}", f"versions below v{latest} refused for decrypt and encrypt"),
                       {"leaked_version": before, "latest_version": latest})

    @override
    def prove_dead(self, ref: Ref, leaked: Secret | None = None, samples: Sequence[str] = ()) -> Proof:
        """Dead when every sample ciphertext of an old version is refused by ``decrypt``."""
        key = self.key(ref.id, str(ref))
        evidence = [f"min_decryption_version v{key.get('min_decryption_version')}, latest v{key.get('latest_version')}"]
        refused = 0
        for index, sample in enumerate(samples):
            reply = self.vault.probe("POST", f"{self.mount}/decrypt/{ref.id}", {"ciphertext": sample})
            if reply.status >= 400:
                refused += 1
                evidence.append(f"decrypt of sample {index}: refused ({reply.status} {' '.join(reply.errors)[:60]})")
            else:
                evidence.append(f"decrypt of sample {index}: accepted")
        return Proof(ref, self.clock.now(), bool(samples) and refused == len(samples), tuple(evidence))

    @override
    def usage_since(self, ref: Ref, since: datetime) -> list[UsageRecord]:
        """Audit-device entries on the key's encrypt, decrypt, rewrap, datakey, sign and key paths."""
        ops = ("encrypt", "decrypt", "rewrap", "datakey", "sign", "verify", "hmac", "keys")
        paths = {f"{self.mount}/{op}/{ref.id}" for op in ops}
        return [UsageRecord(ref, "vault-audit", entry_time(e), e) for e in self.vault.audit_entries(since)
                if str((e.get("request") or {}).get("path", "")).split("/datakey/")[0] in paths
                or any(str((e.get("request") or {}).get("path", "")).startswith(p + "/") for p in paths)]

    @override
    def rotate(self, ref: Ref, *, ciphertexts: Sequence[str] = (), checkpoint: Path | None = None) -> Rotation:
        """Rewrap ``ciphertexts`` to the latest version (rotating first unless contain did), resumable.

        Old versions stay refused except for this rewrap: ``min_decryption_version`` is
        lowered to the oldest ciphertext's version for the batch calls and raised again
        after, also when a killed run is resumed.
        """
        cp = Checkpoint(checkpoint, ref=str(ref), step="rotate") if checkpoint else None
        key = self.key(ref.id, str(ref))
        state: dict[str, Any] = dict(cp.state) if cp else {}
        if "floor" not in state:
            if int(key.get("min_encryption_version", 0)) < int(key["latest_version"]):  # contain did not rotate
                self.vault.request("POST", f"{self.mount}/keys/{ref.id}/rotate", ref=str(ref))
                key = self.key(ref.id, str(ref))
            state = {"floor": int(key["min_decryption_version"]), "latest": int(key["latest_version"])}
            if cp is not None:
                cp.save(**state)
        done: dict[str, Any] = dict(cp.done) if cp else {}
        todo = [i for i in range(len(ciphertexts)) if str(i) not in done]
        if todo:
            oldest = min(ciphertext_version(ciphertexts[i]) for i in todo)
            self._config(ref.id, str(ref), min_decryption_version=min(oldest, int(state["floor"])))
            try:
                for start in range(0, len(todo), BATCH):
                    chunk = todo[start:start + BATCH]
                    reply = self.vault.request("POST", f"{self.mount}/rewrap/{ref.id}", {
                        "batch_input": [{"ciphertext": ciphertexts[i]} for i in chunk]}, ref=str(ref))
                    results = reply.get("data", {}).get("batch_results", [])
                    bad = [r.get("error") for r in results if r.get("error")]
                    if bad or len(results) != len(chunk):
                        raise StepStateError(f"{ref}: rewrap refused a ciphertext ({str(bad[:1])[:80]})")
                    batch = [(str(i), str(r["ciphertext"])) for i, r in zip(chunk, results, strict=True)]
                    if cp is not None:
                        cp.record(batch)
                    done.update(batch)
            finally:
                self._config(ref.id, str(ref), min_decryption_version=int(state["floor"]))
        if cp is not None:
            cp.save(phase="done")
        pairs = tuple((ciphertexts[i], str(done[str(i)])) for i in range(len(ciphertexts)))
        return Rotation(ref, ref, self.clock.now(), None, pairs, {"latest_version": int(state["latest"])})

    @override
    def retire(self, rotation: Rotation) -> Outcome:
        """Raise ``min_decryption_version`` to the new version and trim the older ones (material destroyed)."""
        latest = int(rotation.detail["latest_version"])
        ref = str(rotation.ref)
        self._config(rotation.ref.id, ref, min_decryption_version=latest, min_encryption_version=latest)
        self.vault.request("POST", f"{self.mount}/keys/{rotation.ref.id}/trim", {"min_available_version": latest},
                           ref=ref)
        return Outcome(rotation.ref, Step.RETIRE, self.clock.now(), (f"versions below v{latest} trimmed",))
