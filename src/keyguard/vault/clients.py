"""Clients (consumers of keys), their grants and bearer tokens.

Tokens are 256-bit random strings (``kgt_…``); only their SHA-256 is stored,
looked up by that hash and compared in constant time. They expire (at most
``[auth] max_token_ttl`` of ``keyguard.toml`` after issue, 1 h by default) and can be
revoked; suspending a client refuses all its tokens at once.

Where the deployment requires MFA, the administrative operations (creating a
client, changing its grants or second factor, issuing a token, resuming a client)
need a principal with a second factor, like the destructive key operations. A TOTP
code is accepted once and repeated wrong codes lock the second factor for a while
(:mod:`keyguard.vault.totp`); every refusal is audited.
"""

from __future__ import annotations

import hmac
import re
import secrets
import tomllib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from keyguard.clock import as_utc
from keyguard.config import Settings
from keyguard.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    SecondFactorError,
    SecondFactorLockedError,
    UsageError,
)
from keyguard.store.tables import Client, Grant, Token
from keyguard.vault import totp
from keyguard.vault.model import check_name, hash_token
from keyguard.vault.principal import ROLES, Principal
from keyguard.vault.service import Vault

TOKEN_PREFIX = "kgt_"  # noqa: S105 - a prefix, not a secret
DEFAULT_TTL = timedelta(hours=1)
DEFAULT_MAX_TTL = timedelta(hours=1)
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str | int) -> timedelta:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"2d"`` or a number of seconds."""
    found = _DURATION.match(str(text).strip())
    if found is None or int(found.group(1)) == 0:
        raise UsageError(f"invalid duration {text!r}", hint="a positive number with s, m, h or d, like 1h")
    return timedelta(seconds=int(found.group(1)) * _UNITS[found.group(2)])


def human_ttl(ttl: timedelta) -> str:
    """``3600 s`` → ``1h`` (the largest unit that divides it)."""
    seconds = int(ttl.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def configured_max_ttl(settings: Settings | None = None) -> timedelta:
    """``[auth] max_token_ttl`` of ``$KEYGUARD_HOME/keyguard.toml``, else 1 h."""
    path = (settings or Settings.from_env()).config_file
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return DEFAULT_MAX_TTL
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        raise UsageError(f"cannot read {path}", hint="fix the TOML syntax") from None
    value = document.get("auth", {}).get("max_token_ttl") if isinstance(document.get("auth"), dict) else None
    if value is None:
        return DEFAULT_MAX_TTL
    try:
        return parse_ttl(value)
    except UsageError:
        raise UsageError(f"invalid [auth] max_token_ttl in {path}", hint="a duration like 15m or 1h") from None


@dataclass(frozen=True)
class ClientView:
    """A client as shown to users."""

    name: str
    role: str
    status: str
    grants: list[str]
    references: list[str]
    created_at: datetime
    status_changed_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON view."""
        return {
            "name": self.name,
            "role": self.role,
            "status": self.status,
            "grants": self.grants,
            "references": self.references,
            "created_at": self.created_at,
            "status_changed_at": self.status_changed_at,
        }


class ClientService:
    """Create, suspend and authenticate clients."""

    def __init__(self, vault: Vault, max_ttl: timedelta | None = None) -> None:
        self.vault = vault
        self.engine = vault.engine
        self.max_ttl = max_ttl if max_ttl is not None else configured_max_ttl()

    def create(
        self,
        principal: Principal,
        name: str,
        role: str,
        grants: list[tuple[str, str]],
        references: list[str] | None = None,
        description: str = "",
    ) -> ClientView:
        """Register a client with a role and ``KEY:OP`` grants."""
        check_name(name, "client")
        if role not in ROLES:
            raise UsageError(f"unknown role {role!r}", hint="one of " + ", ".join(ROLES))
        with self.vault.audited(principal, "client.create", None) as ctx:
            principal.require("client.create")
            self.vault.require_mfa(principal, "client.create")
            now = self.vault.clock.now()
            with self.vault.state_tx() as conn:
                if conn.execute(select(Client.id).where(Client.name == name)).first():
                    raise ConflictError(f"client {name!r} already exists")
                client_id = conn.execute(
                    insert(Client)
                    .values(
                        name=name,
                        role=role,
                        status="active",
                        description=description,
                        references=references or [],
                        created_at=now,
                        status_changed_at=now,
                    )
                    .returning(Client.id)
                ).scalar_one()
                if grants:
                    conn.execute(
                        insert(Grant),
                        [{"client_id": client_id, "key_pattern": k, "op": o} for k, o in grants],
                    )
                ctx["reason"] = f"client {name} role {role} grants " + ",".join(f"{k}:{o}" for k, o in grants)
        return self.get(name)

    def get(self, name: str) -> ClientView:
        """One client, or :class:`NotFoundError`."""
        with Session(self.engine) as session:
            client = session.scalars(select(Client).where(Client.name == name)).one_or_none()
            if client is None:
                raise NotFoundError(f"client {name!r} not found", hint="keyguard client list shows the clients")
            grants = session.execute(select(Grant.key_pattern, Grant.op).where(Grant.client_id == client.id)).all()
            return ClientView(
                name=client.name,
                role=client.role,
                status=client.status,
                grants=[f"{k}:{o}" for k, o in grants],
                references=list(client.references or []),
                created_at=as_utc(client.created_at),
                status_changed_at=as_utc(client.status_changed_at),
            )

    def list(self, principal: Principal) -> list[ClientView]:
        """All clients."""
        principal.require("client.read")
        with self.engine.connect() as conn:
            names = conn.execute(select(Client.name).order_by(Client.name)).scalars().all()
        return [self.get(n) for n in names]

    def set_status(self, principal: Principal, name: str, status: str, reason: str | None = None) -> ClientView:
        """Suspend or resume a client (suspension refuses all its tokens at once)."""
        op = "client.suspend" if status == "suspended" else "client.resume"
        with self.vault.audited(principal, op, None) as ctx:
            principal.require(op)
            if status == "active":  # giving access back is administrative; taking it away is not
                self.vault.require_mfa(principal, op)
            self.get(name)
            with self.vault.state_tx() as conn:
                conn.execute(
                    update(Client)
                    .where(Client.name == name)
                    .values(status=status, status_changed_at=self.vault.clock.now())
                )
                self.vault.bump_state(conn)
                ctx["reason"] = f"client {name}: {reason or status}"
        return self.get(name)

    def issue_token(self, principal: Principal, name: str, ttl: timedelta | None = None) -> tuple[str, datetime]:
        """A new bearer token for ``name``; returns ``(token, expires_at)``. Shown once.

        ``ttl`` defaults to 1 h (or the configured maximum when shorter); a longer
        one than ``[auth] max_token_ttl`` is refused, naming the maximum.
        """
        ttl = ttl if ttl is not None else min(DEFAULT_TTL, self.max_ttl)
        with self.vault.audited(principal, "client.token", None) as ctx:
            principal.require("client.token")
            self.vault.require_mfa(principal, "client.token")
            if ttl < timedelta(seconds=1):
                raise UsageError("token lifetime must be at least 1 second")
            if ttl > self.max_ttl:
                raise UsageError(
                    f"token lifetime {human_ttl(ttl)} exceeds the maximum of {human_ttl(self.max_ttl)}",
                    hint="ask for a shorter --ttl, or raise [auth] max_token_ttl in keyguard.toml",
                )
            view = self.get(name)
            if view.status != "active":
                raise PermissionDeniedError(f"client {name!r} is {view.status}", hint="resume it first")
            token = TOKEN_PREFIX + secrets.token_urlsafe(32)
            now = self.vault.clock.now()
            expires = now + ttl
            with self.vault.state_tx() as conn:
                client_id = conn.execute(select(Client.id).where(Client.name == name)).scalar_one()
                conn.execute(
                    insert(Token).values(
                        client_id=client_id,
                        token_hash=hash_token(token),
                        created_at=now,
                        expires_at=expires,
                    )
                )
                ctx["reason"] = f"token for {name} until {expires.isoformat()}"
        return token, expires

    def revoke_tokens(self, principal: Principal, name: str) -> int:
        """Revoke every token of a client; returns how many."""
        with self.vault.audited(principal, "client.revoke", None) as ctx:
            principal.require("client.revoke")
            self.get(name)
            with self.vault.state_tx() as conn:
                client_id = conn.execute(select(Client.id).where(Client.name == name)).scalar_one()
                count = conn.execute(
                    update(Token)
                    .where(Token.client_id == client_id, Token.revoked_at.is_(None))
                    .values(revoked_at=self.vault.clock.now())
                ).rowcount
                self.vault.bump_state(conn)  # every node drops its token cache
                ctx["reason"] = f"revoked {count} tokens of {name}"
        return int(count)

    def enroll_mfa(self, principal: Principal, name: str) -> tuple[str, str]:
        """Give a client a TOTP second factor; returns ``(base32 secret, otpauth URI)``, shown once."""
        import pyotp

        with self.vault.audited(principal, "client.mfa", None) as ctx:
            principal.require("client.config")
            self.vault.require_mfa(principal, "client.mfa")
            self.get(name)
            secret = pyotp.random_base32()
            gen, sealed = self.vault.barrier.seal(secret.encode(), f"client-totp:{name}".encode())
            with self.vault.state_tx() as conn:
                client_id = conn.execute(
                    update(Client).where(Client.name == name).values(totp_sealed=sealed).returning(Client.id)
                ).scalar_one()
                totp.ensure_state(conn, client_id)
                ctx["reason"] = f"TOTP enrolled for {name} (barrier generation {gen})"
        return secret, pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name="keyguard")

    def _check_otp(self, caller: Principal, sealed: bytes | None, otp: str) -> None:
        """Accept ``otp`` once for ``caller`` or raise (audited; no code or secret in the record)."""
        assert caller.client_id is not None
        now = self.vault.clock.now()
        if sealed is None:
            verdict = totp.OtpVerdict(False, "no second factor enrolled")
        else:
            secret = self.vault.barrier.unseal_any(sealed, f"client-totp:{caller.name}".encode())
            verdict = totp.check_code(self.engine, caller.client_id, secret.decode(), otp, now)
        if verdict.accepted:
            return
        self.vault.record(caller, "auth.otp", "denied", None, None, verdict.reason)
        if verdict.locked_until is not None:
            wait = max(1, int((verdict.locked_until - now).total_seconds() + 0.999))
            raise SecondFactorLockedError(
                f"too many wrong second factors: try again in {wait} s",
                retry_after=wait,
                hint="the second factor is locked after repeated wrong codes",
            )
        raise SecondFactorError("invalid second factor", hint="use a fresh TOTP code; each code works once")

    def authenticate(
        self,
        token: str,
        source_ip: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
        otp: str | None = None,
    ) -> Principal:
        """The principal a bearer token stands for, or :class:`PermissionDeniedError` (no detail).

        With ``otp`` (a TOTP code) the principal carries a second factor, which
        destructive operations need where the deployment requires MFA.
        """
        refused = PermissionDeniedError("invalid or expired token", hint="get a new one with keyguard client token")
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            raise refused
        digest = hash_token(token)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    Token.token_hash,
                    Token.expires_at,
                    Token.revoked_at,
                    Client.id,
                    Client.name,
                    Client.role,
                    Client.status,
                    Client.totp_sealed,
                )
                .join(Client, Client.id == Token.client_id)
                .where(Token.token_hash == digest)
            ).first()
            if row is None or not hmac.compare_digest(row.token_hash, digest):
                raise refused
            if row.revoked_at is not None or as_utc(row.expires_at) <= self.vault.clock.now():
                raise refused
            if row.status != "active":
                raise PermissionDeniedError(f"client {row.name!r} is {row.status}", hint="an operator suspended it")
            grants = conn.execute(select(Grant.key_pattern, Grant.op).where(Grant.client_id == row.id)).all()
        caller = Principal(
            name=row.name,
            role=row.role,
            grants=tuple((g.key_pattern, g.op) for g in grants),
            source_ip=source_ip,
            user_agent=user_agent,
            request_id=request_id,
            client_id=row.id,
        )
        if not otp:
            return caller
        self._check_otp(caller, row.totp_sealed, otp)
        return replace(caller, mfa=True)

    def delete_grants(self, principal: Principal, name: str) -> None:
        """Remove every grant of a client (least privilege after an incident)."""
        with self.vault.audited(principal, "client.config", None) as ctx:
            principal.require("client.config")
            self.vault.require_mfa(principal, "client.config")
            with self.vault.state_tx() as conn:
                client_id = conn.execute(select(Client.id).where(Client.name == name)).scalar_one_or_none()
                if client_id is None:
                    raise NotFoundError(f"client {name!r} not found")
                conn.execute(delete(Grant).where(Grant.client_id == client_id))
                self.vault.bump_state(conn)
                ctx["reason"] = f"grants of {name} removed"
