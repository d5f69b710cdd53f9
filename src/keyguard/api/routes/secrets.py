"""``/v1/secrets``: versioned secrets (SPEC §8), with the same bearer tokens and audit as keys.

``GET /v1/secrets`` lists (no values) · ``GET /v1/secrets/{name}[?version=N]`` reads
(audited with the caller; ``X-Keyguard-Purpose`` is recorded as the reason) ·
``PUT`` or ``POST /v1/secrets/{name}`` ``{"value_b64"}`` writes a new version ·
``POST /v1/secrets/{name}/rotate`` ``{"value_b64"}`` or ``{"generate": true}`` ·
``DELETE /v1/secrets/{name}?version=N`` destroys a version (a second factor where
MFA is required) · ``GET /v1/secrets/{name}/readers?since=…`` lists who read it.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from keyguard.api.convert import b64decode
from keyguard.api.deps import PrincipalDep, VaultDep
from keyguard.clock import parse_time
from keyguard.config import MAX_VERSION
from keyguard.errors import UsageError
from keyguard.vault.secrets import MAX_VALUE, SecretInfo, SecretStore, readers_since

router = APIRouter(prefix="/v1/secrets", tags=["secrets"])
_PURPOSE = re.compile(r"[^A-Za-z0-9 .:_/-]")


class SecretWrite(BaseModel):
    """``PUT /v1/secrets/{name}``: the new version's value."""

    model_config = ConfigDict(extra="forbid")
    value_b64: str = Field(max_length=(MAX_VALUE * 4) // 3 + 8)


class SecretRotate(BaseModel):
    """``POST /v1/secrets/{name}/rotate``: a value, or ``generate`` for a random one."""

    model_config = ConfigDict(extra="forbid")
    value_b64: str | None = Field(default=None, max_length=(MAX_VALUE * 4) // 3 + 8)
    generate: bool = False


class SecretVersionOut(BaseModel):
    """The version written."""

    name: str
    version: int


class SecretValueOut(BaseModel):
    """A version's value."""

    name: str
    version: int
    value_b64: str
    created_at: datetime


class SecretInfoOut(BaseModel):
    """A secret's metadata (no value)."""

    name: str
    latest_version: int
    created_at: datetime
    updated_at: datetime
    versions: list[dict[str, Any]]


def get_store(request: Request) -> SecretStore:
    """The application's secret store (made once, on first use)."""
    store: SecretStore | None = getattr(request.app.state, "secret_store", None)
    if store is None:
        store = SecretStore(request.app.state.vault)
        request.app.state.secret_store = store
    return store


StoreDep = Annotated[SecretStore, Depends(get_store)]


def _info_out(info: SecretInfo) -> SecretInfoOut:
    return SecretInfoOut(**info.to_dict())


def _value(body_value: str | None) -> bytes:
    if body_value is None:
        raise UsageError("value_b64 is required unless generate is true")
    return b64decode(body_value, "value_b64")


@router.get("", name="secret.list")
def list_secrets(store: StoreDep, principal: PrincipalDep) -> list[SecretInfoOut]:
    """Every secret the caller may see, metadata only (``keyguard secret list``)."""
    return [_info_out(info) for info in store.list(principal)]


@router.get("/{name}", name="secret.read")
def read_secret(
    name: str,
    request: Request,
    store: StoreDep,
    principal: PrincipalDep,
    version: int | None = Query(default=None, ge=1, le=MAX_VERSION),
) -> SecretValueOut:
    """The latest (or a given) version's value (``keyguard secret get``); audited with the caller."""
    purpose = _PURPOSE.sub("", request.headers.get("x-keyguard-purpose", "api"))[:64] or "api"
    found = store.get(principal, name, version, purpose=purpose)
    return SecretValueOut(
        name=found.name,
        version=found.version,
        value_b64=base64.b64encode(found.value).decode("ascii"),
        created_at=found.created_at,
    )


@router.put("/{name}", status_code=status.HTTP_201_CREATED, name="secret.put")
@router.post("/{name}", status_code=status.HTTP_201_CREATED, name="secret.post")
def put_secret(name: str, body: SecretWrite, store: StoreDep, principal: PrincipalDep) -> SecretVersionOut:
    """Write a new version (``keyguard secret put``)."""
    version = store.put(principal, name, _value(body.value_b64))
    return SecretVersionOut(name=name, version=version)


@router.post("/{name}/rotate", name="secret.rotate")
def rotate_secret(name: str, body: SecretRotate, store: StoreDep, principal: PrincipalDep) -> SecretVersionOut:
    """A new version of an existing secret (``keyguard secret rotate``); a generated value is not echoed."""
    value = None if body.generate else _value(body.value_b64)
    version, _generated = store.rotate(principal, name, value)
    return SecretVersionOut(name=name, version=version)


@router.delete("/{name}", name="secret.destroy")
def destroy_secret(
    name: str,
    store: StoreDep,
    principal: PrincipalDep,
    version: int = Query(ge=1, le=MAX_VERSION),
) -> SecretInfoOut:
    """Erase one version's value for good (``keyguard secret destroy``)."""
    return _info_out(store.destroy(principal, name, version))


@router.get("/{name}/readers", name="secret.readers")
def secret_readers(
    name: str,
    vault: VaultDep,
    principal: PrincipalDep,
    since: str | None = Query(default=None, max_length=64),
) -> list[dict[str, Any]]:
    """Who read the secret since a time (the assessment of a leaked secret)."""
    with vault.audited(principal, "audit.read", None):
        principal.require("audit.read")
        found = readers_since(vault.engine, name, parse_time(since) if since else None)
    return [r.to_dict() for r in found]
