"""Request and response bodies of the API (never storage rows). Bytes travel as base64."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from keyguard.config import MAX_VERSION

Purpose = Literal["encrypt", "sign", "mac"]
Tier = Literal["high", "medium", "low"]
Role = Literal["admin", "operator", "auditor", "service"]
Context = dict[str, Any] | None
# Names of keys and clients (SPEC §2), stated in the OpenAPI document so that clients
# and schemathesis know them; the vault checks the same rule again.
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
# Standard or URL-safe base64, padding optional (a superset: the decoder is the judge).
BASE64_PATTERN = r"^[A-Za-z0-9+/_-]*={0,2}$"
KeyName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=64, description="a key name")]
ClientName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=64, description="a client name")]
Base64 = Annotated[str, Field(pattern=BASE64_PATTERN)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# ---------------------------------------------------------------- keys
class KeyCreate(_In):
    """``POST /v1/keys``."""

    name: str = Field(max_length=64, pattern=NAME_PATTERN)
    purpose: Purpose
    algorithm: str | None = Field(default=None, max_length=24)
    tier: Tier = "medium"
    owner: str = Field(default="", max_length=128)
    tags: list[str] = Field(default_factory=list)
    rotation_days: int = Field(default=90, ge=1, le=3650)


class KeyImport(_In):
    """``POST /v1/keys/{name}/import``: PEM, DER or JWK private keys; raw, hex or base64 secrets."""

    material_b64: Base64
    purpose: Purpose
    tier: Tier = "medium"
    algorithm: str | None = Field(default=None, max_length=24)
    owner: str = Field(default="", max_length=128)
    tags: list[str] = Field(default_factory=list)


class KeyRotate(_In):
    """``POST /v1/keys/{name}/rotate``: optionally another algorithm of the same purpose."""

    algorithm: str | None = Field(default=None, max_length=24)


class VersionChange(_In):
    """``POST /v1/keys/{name}/versions/{n}/{action}``."""

    reason: str | None = Field(default=None, max_length=500)


class KeyConfig(_In):
    """``POST /v1/keys/{name}/config``."""

    min_decryption_version: int = Field(ge=1, le=MAX_VERSION)


class VersionOut(BaseModel):
    """One key version (no material)."""

    version: int
    algorithm: str
    state: str
    fingerprint: str
    origin: str
    created_at: datetime
    state_changed_at: datetime
    last_used_at: datetime | None


class KeyOut(BaseModel):
    """A key and its versions (no material)."""

    name: str
    purpose: str
    tier: str
    owner: str
    tags: list[str]
    rotation_days: int
    min_decryption_version: int
    active_version: int | None
    latest_version: int
    algorithm: str
    created_at: datetime
    rotated_at: datetime
    last_used_at: datetime | None
    versions: list[VersionOut]


class PublicKeyOut(BaseModel):
    """``GET /v1/keys/{name}/public?format=pem``."""

    key: str
    version: int
    algorithm: str
    pem: str


# ---------------------------------------------------------------- crypto
class EncryptIn(_In):
    """``POST /v1/keys/{name}/encrypt``."""

    plaintext_b64: Base64
    context: Context = None


class EncryptOut(BaseModel):
    """Ciphertext in the text form ``kg:v1:<key>:<version>:<payload>``."""

    ciphertext: str
    version: int
    key: str


class DecryptIn(_In):
    """``POST /v1/keys/{name}/decrypt``."""

    ciphertext: str = Field(max_length=16 * 1024 * 1024)
    context: Context = None


class DecryptOut(BaseModel):
    """The plaintext, base64."""

    plaintext_b64: str
    version: int
    key: str


class RewrapIn(DecryptIn):
    """``POST /v1/keys/{name}/rewrap``."""


class RewrapOut(EncryptOut):
    """The ciphertext under the active version."""


class DataKeyIn(_In):
    """``POST /v1/keys/{name}/data-key``."""

    context: Context = None


class DataKeyOut(BaseModel):
    """A fresh 256-bit data key: in clear (base64) and wrapped under the active version."""

    plaintext_b64: str
    ciphertext: str
    version: int
    key: str


class SignIn(_In):
    """``POST /v1/keys/{name}/sign``."""

    message_b64: Base64


class SignOut(BaseModel):
    """A raw signature (or MAC), base64."""

    signature_b64: Base64
    version: int
    key: str


class VerifyIn(_In):
    """``POST /v1/keys/{name}/verify``; an invalid signature answers 409 like exit code 5."""

    message_b64: Base64
    signature_b64: Base64
    version: int | None = Field(default=None, ge=1, le=MAX_VERSION)


class VerifyOut(BaseModel):
    """The version that verified."""

    valid: bool
    version: int
    key: str


# ---------------------------------------------------------------- clients
class ClientCreate(_In):
    """``POST /v1/clients``; grants are ``KEY:OP[,OP…]`` strings as on the command line."""

    name: str = Field(max_length=64, pattern=NAME_PATTERN)
    role: Role
    grants: list[str] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)
    description: str = Field(default="", max_length=1000)


class ClientOut(BaseModel):
    """A client."""

    name: str
    role: str
    status: str
    grants: list[str]
    references: list[str]
    created_at: datetime
    status_changed_at: datetime


class ClientStatusIn(_In):
    """``POST /v1/clients/{name}/suspend`` or ``/resume``."""

    reason: str | None = Field(default=None, max_length=500)


class TokenIn(_In):
    """``POST /v1/clients/{name}/token``."""

    # The upper bound keeps an absurd lifetime a 422 (it overflowed timedelta: a 500).
    ttl_seconds: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="default 1 h; at most [auth] max_token_ttl"
    )


class TokenOut(BaseModel):
    """A bearer token, shown once."""

    token: str
    expires_at: datetime


class RevokeOut(BaseModel):
    """How many tokens were revoked."""

    revoked: int


# ---------------------------------------------------------------- audit
class AuditEventOut(BaseModel):
    """An audit event (SPEC §5)."""

    id: int
    ts: str
    actor: str
    source_ip: str | None
    user_agent: str | None
    op: str
    key: str | None
    version: int | None
    result: str
    reason: str | None
    request_id: str | None
    prev_hash: str
    hash: str


class AuditVerifyOut(BaseModel):
    """A valid chain: how many events, and its head."""

    valid: bool
    events: int
    last_id: int
    last_hash: str
    checkpoint_checked: bool


# ---------------------------------------------------------------- errors
class ErrorDetail(BaseModel):
    """Where a validation error is and what it is (never the value sent)."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every refusal: ``error`` is a slug, ``reason`` names the state or the field."""

    error: str
    reason: str
    hint: str | None = None
    detail: list[ErrorDetail] | None = None


class HealthOut(BaseModel):
    """``/healthz``."""

    status: str
    database: str
