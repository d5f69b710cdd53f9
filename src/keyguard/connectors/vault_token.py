"""Vault/OpenBao tokens (kind ``token``, id the token's accessor)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from typing_extensions import override

from keyguard.clock import Clock
from keyguard.connectors.base import Adapter, Identified, Inventoried, Outcome, Proof, Step, UsageRecord
from keyguard.connectors.errors import UnknownReferenceError
from keyguard.connectors.refs import Ref
from keyguard.connectors.secret import Secret
from keyguard.connectors.vault_client import VaultClient, entry_time

TOKEN_PREFIXES = ("hvs.", "hvb.", "hvr.", "s.", "b.", "r.")


def _at(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return entry_time({"time": str(value)})


class VaultToken(Adapter):
    """A token: looked up without using it, revoked with its children, proven dead by ``lookup-self``."""

    kind = "token"
    steps = frozenset({Step.IDENTIFY, Step.INVENTORY, Step.CONTAIN, Step.PROVE_DEAD, Step.USAGE_SINCE})
    manual: ClassVar[dict[Step, str]] = {
        Step.ROTATE: "tokens are re-issued, not rotated: let the consumer log in again through its auth method "
                     "(AppRole, Kubernetes, OIDC …) with the policies shown by identify",
        Step.DELIVER: "the consumer's auth method delivers its new token at login",
        Step.CONSUMERS_SWITCHED: "the revoked token is refused everywhere: consumers that still work have logged in",
        Step.RETIRE: "nothing to retire: the token and its children were revoked at containment",
    }

    def __init__(self, connector: str, vault: VaultClient, clock: Clock | None = None) -> None:
        super().__init__(connector, clock)
        self.vault = vault

    @override
    def identify(self, leaked: Secret) -> Identified | None:
        """``auth/token/lookup`` with the connector's token: the leaked token is a parameter, never used to log in."""
        value = leaked.reveal().strip()
        if not value.startswith(TOKEN_PREFIXES):
            return None
        reply = self.vault.probe("POST", "auth/token/lookup", {"token": value})
        if reply.status != 200:
            return None
        data = reply.body.get("data", {})
        return Identified(self.ref(str(data["accessor"])), str(data.get("display_name", "")), {
            "policies": data.get("policies", []), "path": data.get("path"), "expire_time": data.get("expire_time"),
            "entity_id": data.get("entity_id"), "orphan": data.get("orphan"),
        })

    @override
    def inventory(self) -> list[Inventoried]:
        """Every token accessor (needs ``list`` with sudo on ``auth/token/accessors``)."""
        keys = self.vault.request("LIST", "auth/token/accessors").get("data", {}).get("keys", [])
        out: list[Inventoried] = []
        for accessor in keys:
            data = self.vault.request("POST", "auth/token/lookup-accessor", {"accessor": accessor}).get("data", {})
            out.append(Inventoried(self.ref(str(accessor)), "valid", _at(data.get("creation_time")),
                                   _at(data.get("last_renewal_time")),
                                   {"display_name": data.get("display_name"), "policies": data.get("policies"),
                                    "expire_time": data.get("expire_time")}))
        return out

    @override
    def contain(self, ref: Ref) -> Outcome:
        """``auth/token/revoke-accessor``: the token and every child token revoked."""
        data = self.vault.request("POST", "auth/token/lookup-accessor", {"accessor": ref.id},
                                  ref=str(ref)).get("data", {})
        self.vault.request("POST", "auth/token/revoke-accessor", {"accessor": ref.id}, ref=str(ref))
        return Outcome(ref, Step.CONTAIN, self.clock.now(), ("token revoked with its children",),
                       {"policies": data.get("policies", []), "display_name": data.get("display_name")})

    @override
    def prove_dead(self, ref: Ref, leaked: Secret | None = None, samples: Sequence[str] = ()) -> Proof:
        """Dead when ``lookup-self`` with the leaked token is refused and its accessor no longer resolves."""
        gone = self.vault.probe("POST", "auth/token/lookup-accessor", {"accessor": ref.id})
        evidence = [f"lookup-accessor: {'gone' if gone.status != 200 else 'still valid'} ({gone.status})"]
        refused = False
        if leaked is not None:
            me = self.vault.probe("GET", "auth/token/lookup-self", token=leaked)
            refused = me.status in {400, 401, 403}
            evidence.append(f"lookup-self with the leaked token: {'refused' if refused else 'accepted'} "
                            f"({me.status} {' '.join(me.errors)[:60]})")
        else:
            evidence.append("no leaked token given: lookup-self not attempted")
        return Proof(ref, self.clock.now(), refused and gone.status != 200, tuple(evidence))

    @override
    def usage_since(self, ref: Ref, since: datetime) -> list[UsageRecord]:
        """Audit-device entries made with the token, matched by the device's HMAC of the accessor."""
        hashed = self.vault.audit_hash(ref.id)
        found = [e for e in self.vault.audit_entries(since)
                 if (e.get("auth") or {}).get("accessor") in {hashed, ref.id}]
        if not found and not self.vault.audit_log:
            raise UnknownReferenceError(f"{ref}: connector {self.connector!r} has no audit_log",
                                        hint="set audit_log to the file audit device's path")
        return [UsageRecord(ref, "vault-audit", entry_time(e), e) for e in found]
