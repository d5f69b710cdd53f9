"""JWT access tokens (SPEC §8): issued for a client's credential, checked on every request.

A token is a JWT signed with the keyring's current key (Ed25519 ``EdDSA`` or
``ES256``), ``kid`` in the header, claims ``iss``, ``sub`` (the client), ``aud``,
``iat``, ``exp`` (at most 15 minutes later, ``[auth] jwt_ttl``) and ``jti``.
:meth:`JwtService.exchange` trades an opaque ``kgt_`` token (the client
credential) for one, never outliving it; :meth:`JwtService.issue` is the
administrator's path (``keyguard client token NAME --jwt``).

:meth:`JwtService.verify` accepts only the algorithm of the key named by ``kid``
(so ``alg: none`` and HS256 keyed with the public key are refused), requires
every claim, checks ``iss`` and ``aud`` exactly and the times against the vault's
clock with ``[auth] jwt_leeway``, and then looks the client up: a suspended
client's tokens are refused at once, and so are tokens issued before the
client's last suspension or resumption. The API caches the result only as long
as an opaque token's (:mod:`keyguard.api.auth`), emptied on every state change.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import bindparam, select

from keyguard.clock import as_utc
from keyguard.errors import PermissionDeniedError, UsageError
from keyguard.store.tables import Client, Grant, Token
from keyguard.vault.clients import TOKEN_PREFIX, ClientService, human_ttl
from keyguard.vault.jwks import JwtKeyring
from keyguard.vault.jwt_config import MAX_JWT_TTL, JwtConfig, load_jwt_config
from keyguard.vault.model import hash_token
from keyguard.vault.principal import Principal

MAX_JWT_LENGTH = 4096
_REQUIRED = ("iss", "sub", "aud", "iat", "exp", "jti")
# Built once: the per-request lookup is one statement, without re-building the expression.
_CLIENT_WITH_GRANTS = (
    select(
        Client.id,
        Client.name,
        Client.role,
        Client.status,
        Client.status_changed_at,
        Client.totp_sealed,
        Grant.key_pattern,
        Grant.op,
    )
    .outerjoin(Grant, Grant.client_id == Client.id)
    .where(Client.name == bindparam("name"))
    .order_by(Grant.id)
)


class TokenRejected(PermissionDeniedError):  # noqa: N818 - reads as what happened to the token
    """A JWT that is malformed, expired, re-signed or meant for someone else (HTTP 401)."""


def _rejected(why: str) -> TokenRejected:
    return TokenRejected(f"invalid token: {why}", hint="get a new one from POST /v1/auth/token")


def looks_like_jwt(token: str) -> bool:
    """True for the compact JWS form (three dot-separated parts), never for an opaque ``kgt_`` token."""
    return not token.startswith(TOKEN_PREFIX) and token.count(".") == 2


@dataclass(frozen=True)
class IssuedJwt:
    """An access token as handed out (shown once)."""

    token: str
    expires_at: datetime
    kid: str
    jti: str
    ttl: timedelta

    def to_dict(self) -> dict[str, Any]:
        """JSON view (the OAuth2 token response plus ``expires_at``)."""
        return {
            "access_token": self.token,
            "token_type": "Bearer",
            "expires_in": int(self.ttl.total_seconds()),
            "expires_at": self.expires_at,
        }


def _seconds(value: Any, claim: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _rejected(f"claim {claim} is not a number")
    return int(value)


class JwtService:
    """Issue and verify access tokens for the clients of ``clients``."""

    def __init__(
        self, clients: ClientService, config: JwtConfig | None = None, keyring: JwtKeyring | None = None
    ) -> None:
        self.clients = clients
        self.vault = clients.vault
        self.config = config if config is not None else load_jwt_config()
        self.keyring = keyring if keyring is not None else JwtKeyring(self.vault, self.config)

    # ------------------------------------------------------------------ issuing
    def _mint(self, subject: str, ttl: timedelta, not_after: datetime | None = None) -> IssuedJwt:
        kid, algorithm, private = self.keyring.signer()
        now = self.vault.clock.now()
        iat = int(now.timestamp())
        exp = iat + int(min(ttl, self.config.ttl).total_seconds())
        if not_after is not None:
            exp = min(exp, int(not_after.timestamp()))
        if exp <= iat:
            raise _rejected("the credential expires within a second")
        jti = secrets.token_urlsafe(16)
        claims = {
            "iss": self.config.issuer,
            "sub": subject,
            "aud": self.config.audience,
            "iat": iat,
            "exp": exp,
            "jti": jti,
        }
        token = jwt.encode(claims, private, algorithm=algorithm, headers={"kid": kid, "typ": "JWT"})
        expires = datetime.fromtimestamp(exp, tz=now.tzinfo)
        return IssuedJwt(token=token, expires_at=expires, kid=kid, jti=jti, ttl=timedelta(seconds=exp - iat))

    def exchange(
        self,
        credential: str,
        client_name: str | None = None,
        source_ip: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
    ) -> IssuedJwt:
        """A JWT for the client whose opaque token ``credential`` is (client credentials grant).

        Refused like a bad opaque token when the credential is unknown, expired,
        revoked, its client suspended, or ``client_name`` names another client.
        The JWT never outlives the credential. Audited as ``auth.token`` by the client.
        """
        if not credential.startswith(TOKEN_PREFIX):
            raise PermissionDeniedError("invalid or expired token", hint="the client secret is a kgt_ token")
        caller = self.clients.authenticate(credential, source_ip, user_agent, request_id)
        if client_name is not None and not secrets.compare_digest(client_name.encode(), caller.name.encode()):
            raise PermissionDeniedError("invalid or expired token", hint="client_id does not match the secret")
        with self.vault.engine.connect() as conn:
            until = conn.execute(
                select(Token.expires_at).where(Token.token_hash == hash_token(credential))
            ).scalar_one()
        with self.vault.audited(caller, "auth.token", None) as ctx:
            issued = self._mint(caller.name, self.config.ttl, as_utc(until))
            ctx["reason"] = f"jwt {issued.jti} kid {issued.kid} until {issued.expires_at.isoformat()}"
        return issued

    def issue(self, principal: Principal, name: str, ttl: timedelta | None = None) -> IssuedJwt:
        """A JWT for client ``name`` from an administrator (``client token --jwt``); audited as ``client.token``."""
        with self.vault.audited(principal, "client.token", None) as ctx:
            principal.require("client.token")
            self.vault.require_mfa(principal, "client.token")
            ttl = ttl if ttl is not None else self.config.ttl
            if ttl > self.config.ttl:
                raise UsageError(
                    f"token lifetime {human_ttl(ttl)} exceeds the maximum of {human_ttl(self.config.ttl)}",
                    hint="JWTs live at most [auth] jwt_ttl (15m at most)",
                )
            view = self.clients.get(name)
            if view.status != "active":
                raise PermissionDeniedError(f"client {name!r} is {view.status}", hint="resume it first")
            issued = self._mint(name, ttl)
            ctx["reason"] = f"jwt {issued.jti} for {name} kid {issued.kid} until {issued.expires_at.isoformat()}"
        return issued

    # ------------------------------------------------------------------ verifying
    def _claims(self, token: str) -> dict[str, Any]:
        if len(token) > MAX_JWT_LENGTH:
            raise _rejected("too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _rejected("malformed") from None
        kid, algorithm = header.get("kid"), header.get("alg")
        if not isinstance(kid, str):
            raise _rejected("no kid")
        key = self.keyring.verification_key(kid)
        if key is None:
            raise _rejected("unknown signing key")
        if algorithm != key.algorithm:
            raise _rejected("algorithm not allowed")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public,
                algorithms=[key.algorithm],
                audience=self.config.audience,
                issuer=self.config.issuer,
                # times are checked below against the vault's clock
                options={"require": list(_REQUIRED), "verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.InvalidSignatureError:
            raise _rejected("bad signature") from None
        except jwt.InvalidAudienceError:
            raise _rejected("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise _rejected("wrong issuer") from None
        except jwt.InvalidAlgorithmError:
            raise _rejected("algorithm not allowed") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _rejected(f"claim {exc.claim} missing") from None
        except jwt.PyJWTError:
            raise _rejected("malformed") from None
        now = self.vault.clock.now().timestamp()
        leeway = self.config.leeway.total_seconds()
        iat, exp = _seconds(claims["iat"], "iat"), _seconds(claims["exp"], "exp")
        if exp + leeway <= now:
            raise _rejected("expired")
        if iat - leeway > now:
            raise _rejected("issued in the future")
        if "nbf" in claims and _seconds(claims["nbf"], "nbf") - leeway > now:
            raise _rejected("not yet valid")
        if exp - iat > MAX_JWT_TTL.total_seconds():
            raise _rejected("lifetime longer than 15 minutes")
        if not isinstance(claims["sub"], str) or not isinstance(claims["jti"], str):
            raise _rejected("malformed")
        return claims

    def verify(
        self,
        token: str,
        otp: str | None = None,
        source_ip: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
    ) -> tuple[Principal, datetime]:
        """The principal of a JWT and when the token expires; :class:`TokenRejected` (401) or 403 when suspended.

        With ``otp`` the principal carries a second factor (checked every time, each code once).
        """
        claims = self._claims(token)
        with self.vault.engine.connect() as conn:
            rows = conn.execute(_CLIENT_WITH_GRANTS, {"name": claims["sub"]}).all()
        if not rows:
            raise _rejected("unknown client")
        row = rows[0]
        if row.status != "active":
            raise PermissionDeniedError(f"client {row.name!r} is {row.status}", hint="an operator suspended it")
        if int(claims["iat"]) < int(as_utc(row.status_changed_at).timestamp()):
            raise _rejected("issued before the client was last suspended or resumed")
        caller = Principal(
            name=row.name,
            role=row.role,
            grants=tuple((g.key_pattern, g.op) for g in rows if g.key_pattern is not None),
            source_ip=source_ip,
            user_agent=user_agent,
            request_id=request_id,
            client_id=row.id,
        )
        expires = datetime.fromtimestamp(int(claims["exp"]), tz=self.vault.clock.now().tzinfo)
        if otp:
            self.clients._check_otp(caller, row.totp_sealed, otp)
            caller = replace(caller, mfa=True)
        return caller, expires
