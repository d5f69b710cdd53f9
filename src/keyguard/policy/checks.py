"""The policy checks: one small predicate per check, registered by ID.

Each check receives the :class:`PolicyContext` (a snapshot of keys, clients,
tokens and data read once) and its parameters, and yields violations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from keyguard.clock import as_utc
from keyguard.crypto.algorithms import ALGORITHMS


@dataclass(frozen=True)
class Violation:
    """One finding of a check."""

    check: str
    severity: str
    subject: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """JSON view."""
        return {
            "check": self.check,
            "severity": self.severity,
            "subject": self.subject,
            "message": self.message,
        }


@dataclass
class PolicyContext:
    """What the checks look at, gathered once."""

    now: datetime
    root_kind: str
    keys: list[dict[str, Any]] = field(default_factory=list)
    clients: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[dict[str, Any]] = field(default_factory=list)
    data: list[dict[str, Any]] = field(default_factory=list)
    last_seen: dict[str, str] = field(default_factory=dict)


Check = Callable[[PolicyContext, dict[str, Any]], Iterator[tuple[str, str]]]
REGISTRY: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    """Register a check under a stable ID."""

    def wrap(fn: Check) -> Check:
        REGISTRY[name] = fn
        return fn

    return wrap


@check("key-rotation-age")
def rotation_age(ctx: PolicyContext, params: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for key in ctx.keys:
        active = next((v for v in key["versions"] if v["state"] == "active"), None)
        if active is None:
            yield key["name"], "has no active version (rotate it)"
            continue
        limit = int(key.get("rotation_days") or params.get("default_days", 90))
        age = ctx.now - as_utc(active["created_at"])
        if age > timedelta(days=limit):
            yield (
                key["name"],
                f"version {active['version']} is {age.days} days old (rotation period {limit} days)",
            )


@check("algorithm-strength")
def algorithm_strength(ctx: PolicyContext, params: dict[str, Any]) -> Iterator[tuple[str, str]]:
    minimum = int(params.get("min_bits", 128))
    for key in ctx.keys:
        active = next((v for v in key["versions"] if v["state"] == "active"), None)
        if active is None:
            continue
        bits = ALGORITHMS[active["algorithm"]].security_bits
        if bits < minimum:
            yield (
                key["name"],
                f"{active['algorithm']} gives {bits}-bit security (< {minimum}); rotate with --algorithm",
            )


@check("high-tier-hsm")
def high_tier_hsm(ctx: PolicyContext, _params: dict[str, Any]) -> Iterator[tuple[str, str]]:
    if ctx.root_kind == "pkcs11":
        return
    for key in ctx.keys:
        if key["tier"] == "high":
            yield (
                key["name"],
                f"high-tier key sealed by a {ctx.root_kind} root, not an HSM (init --rotate-root --root pkcs11)",
            )


@check("least-privilege")
def least_privilege(ctx: PolicyContext, _params: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for client in ctx.clients:
        if client["role"] in ("admin",) and client["name"] != "":
            yield client["name"], "is an admin client: prefer operator or service with grants"
        for grant in client["grants"]:
            pattern, _, op = grant.partition(":")
            if pattern in ("*", "**") or op == "*":
                yield client["name"], f"holds the wildcard grant {grant}"


@check("short-lived-tokens")
def short_lived_tokens(ctx: PolicyContext, params: dict[str, Any]) -> Iterator[tuple[str, str]]:
    limit = timedelta(hours=float(params.get("max_hours", 24)))
    for token in ctx.tokens:
        if as_utc(token["expires_at"]) - as_utc(token["created_at"]) > limit:
            yield token["client"], f"has a live token valid for more than {limit}"


@check("compromised-data-moved")
def compromised_data_moved(ctx: PolicyContext, _params: dict[str, Any]) -> Iterator[tuple[str, str]]:
    blocked = {
        (k["name"], v["version"]) for k in ctx.keys for v in k["versions"] if v["state"] in ("compromised", "disabled")
    }
    for item in ctx.data:
        if (item["key"], item["version"]) in blocked:
            yield (
                item["name"],
                f"still under {item['key']} v{item['version']} (run data rewrap --key {item['key']})",
            )


@check("unused-grants")
def unused_grants(ctx: PolicyContext, params: dict[str, Any]) -> Iterator[tuple[str, str]]:
    cutoff = (ctx.now - timedelta(days=int(params.get("days", 90)))).strftime("%Y-%m-%dT%H:%M:%S")
    for client in ctx.clients:
        if not client["grants"] or as_utc(client["created_at"]).strftime("%Y-%m-%dT%H:%M:%S") > cutoff:
            continue
        if ctx.last_seen.get(client["name"], "") < cutoff:
            yield client["name"], "has grants but has not used keyguard recently (remove them)"
