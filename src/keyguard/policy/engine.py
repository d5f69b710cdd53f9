"""Run the policy (``default.yaml`` or a user file) over the vault's state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select

from keyguard.errors import DataFileError
from keyguard.policy.checks import REGISTRY, PolicyContext, Violation
from keyguard.store.tables import AuditEvent, Client, Token
from keyguard.vault.barrier import live_generations
from keyguard.vault.service import Vault

DEFAULT_POLICY = Path(__file__).with_name("default.yaml")


class CheckSpec(BaseModel):
    """One check of a policy file."""

    severity: str
    description: str
    params: dict[str, Any] = {}
    enabled: bool = True


class PolicySpec(BaseModel):
    """A policy file."""

    checks: dict[str, CheckSpec]


def load_policy(path: Path | None = None) -> PolicySpec:
    """Load and validate a policy file; unknown check IDs refuse to load."""
    path = path or DEFAULT_POLICY
    try:
        spec = PolicySpec.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise DataFileError(f"invalid policy file {path}", hint=type(exc).__name__) from None
    unknown = sorted(set(spec.checks) - set(REGISTRY))
    if unknown:
        raise DataFileError(f"unknown policy check {unknown[0]!r}", hint="known: " + ", ".join(sorted(REGISTRY)))
    return spec


def gather(vault: Vault) -> PolicyContext:
    """Snapshot what the checks need."""
    from keyguard.data.inventory import DataInventory
    from keyguard.vault.clients import ClientService
    from keyguard.vault.principal import local_admin

    admin = local_admin()
    ctx = PolicyContext(now=vault.clock.now(), root_kind=live_generations(vault.engine)[0].root_kind)
    ctx.keys = [k.to_dict() for k in vault.list_keys(admin)]
    ctx.clients = [c.to_dict() for c in ClientService(vault).list(admin)]
    ctx.data = DataInventory(vault).items(admin)
    with vault.engine.connect() as conn:
        ctx.tokens = [
            {"client": r.name, "created_at": r.created_at, "expires_at": r.expires_at}
            for r in conn.execute(
                select(Client.name, Token.created_at, Token.expires_at)
                .join(Client, Client.id == Token.client_id)
                .where(Token.revoked_at.is_(None), Token.expires_at > ctx.now)
            ).all()
        ]
        ctx.last_seen = dict(
            conn.execute(select(AuditEvent.actor, func.max(AuditEvent.ts)).group_by(AuditEvent.actor)).all()
        )
    return ctx


def run_policy(ctx: PolicyContext, spec: PolicySpec) -> list[Violation]:
    """Every violation of every enabled check."""
    found: list[Violation] = []
    for name, check_spec in spec.checks.items():
        if not check_spec.enabled:
            continue
        for subject, message in REGISTRY[name](ctx, check_spec.params):
            found.append(Violation(name, check_spec.severity, subject, message))
    return found
