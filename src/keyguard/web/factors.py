"""Second factors on the dashboard: WebAuthn (security keys, passkeys) and TOTP.

* Sign-in: a person (client) with a WebAuthn authenticator or a TOTP secret enrolled
  must pass one of them once per sign-in before any page shows; the session
  (SHA-256 of the token and the sign-in's random ``keyguard_sid``) is then recorded
  in ``web_sessions``. A new sign-in with the same token starts unverified, and a bare
  bearer header (no sign-in) never counts as verified.
* Destructive actions (contain a key version): a fresh factor with the request
  itself, a WebAuthn assertion whose challenge was issued for exactly that action
  in this session, or a TOTP code (each code works once), whatever the sign-in did.

The relying party is ``app.state.webauthn_rp`` when set, else
``KEYGUARD_WEBAUTHN_RP_ID`` / ``KEYGUARD_WEBAUTHN_ORIGINS`` (comma-separated exact
origins), else rp id ``localhost`` with the page's own origin when it is on localhost.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from fastapi import Request
from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from keyguard.errors import MfaRequiredError
from keyguard.store.db import write_tx
from keyguard.store.tables import Client
from keyguard.store.webauthn_tables import WebAuthnCredential, WebSession
from keyguard.vault.principal import Principal
from keyguard.vault.webauthn_store import RelyingParty, WebAuthnService
from keyguard.web import auth

LOGIN_PURPOSE = "login"
WEBAUTHN = "webauthn"
TOTP = "totp"


def relying_party(request: Request) -> RelyingParty:
    """Whom assertions must be signed for (rp id and the exact origins accepted)."""
    configured: RelyingParty | None = getattr(request.app.state, "webauthn_rp", None)
    if configured is not None:
        return configured
    rp_id = os.environ.get("KEYGUARD_WEBAUTHN_RP_ID", "").strip() or "localhost"
    listed = os.environ.get("KEYGUARD_WEBAUTHN_ORIGINS", "")
    if listed.strip():
        origins = tuple(o.strip().rstrip("/") for o in listed.split(",") if o.strip())
    elif (request.url.hostname or "") == rp_id:
        origins = (f"{request.url.scheme}://{request.url.netloc}",)
    else:
        origins = ()
    return RelyingParty(rp_id=rp_id, origins=origins)


def service(request: Request) -> WebAuthnService:
    """The WebAuthn service of the app's vault, for this request's relying party."""
    return WebAuthnService(auth.vault_of(request), relying_party(request))


def session_of(request: Request) -> str:
    """This request's session name (SHA-256 of the presented token and the sign-in id; '' without a token)."""
    token = auth.presented_token(request)
    return auth.session_hash(token, auth.session_id(request)) if token else ""


def enrolled(engine: Engine, client_id: int) -> tuple[str, ...]:
    """The second factors the client has enrolled (``webauthn``, ``totp``)."""
    with engine.connect() as conn:
        has_key = conn.execute(
            select(WebAuthnCredential.id).where(WebAuthnCredential.client_id == client_id).limit(1)
        ).first()
        has_totp = conn.execute(
            select(Client.id).where(Client.id == client_id, Client.totp_sealed.is_not(None))
        ).first()
    return tuple(name for name, present in ((WEBAUTHN, has_key), (TOTP, has_totp)) if present is not None)


def session_verified(engine: Engine, session_hash: str, client_id: int) -> bool:
    """True when this session passed the sign-in second factor."""
    if not session_hash:
        return False
    with engine.connect() as conn:
        row = conn.execute(
            select(WebSession.client_id).where(
                WebSession.session_hash == session_hash, WebSession.client_id == client_id
            )
        ).first()
    return row is not None


def sign_in_pending(request: Request, who: Principal) -> tuple[str, ...]:
    """The factors ``who`` may use to finish signing in, or () when nothing is pending."""
    if who.client_id is None:
        return ()
    engine = auth.vault_of(request).engine
    available = enrolled(engine, who.client_id)
    if not available or (auth.session_id(request) and session_verified(engine, session_of(request), who.client_id)):
        return ()
    return available


def mark_verified(request: Request, who: Principal, factor: str) -> None:
    """Record that this session passed the sign-in second factor (idempotent)."""
    session_hash = session_of(request)
    if not session_hash or not auth.session_id(request) or who.client_id is None:
        return  # a bare bearer token (no sign-in) never counts as a passed second factor
    vault = auth.vault_of(request)
    with write_tx(vault.engine) as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(WebSession).values(
            session_hash=session_hash, client_id=who.client_id, factor=factor, verified_at=vault.clock.now()
        )
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["session_hash"],
                set_={"factor": factor, "verified_at": vault.clock.now(), "client_id": who.client_id},
            )
        )


def forget_session(request: Request) -> None:
    """Drop this session's second-factor record (sign-out)."""
    session_hash = session_of(request)
    if session_hash:
        with write_tx(auth.vault_of(request).engine) as conn:
            conn.execute(delete(WebSession).where(WebSession.session_hash == session_hash))


def check_factor(request: Request, who: Principal, purpose: str, fields: dict[str, Any]) -> tuple[Principal, str]:
    """Check the factor sent with a request for ``purpose``: ``(who with mfa, factor name)``.

    ``assertion`` (the JSON of a WebAuthn assertion for a challenge issued for this
    purpose in this session) or ``otp`` (a TOTP code, once only). Raises
    :class:`~keyguard.errors.SecondFactorError` for a wrong one (audited by the
    checker) or :class:`~keyguard.errors.MfaRequiredError` when none was sent.
    """
    assertion = str(fields.get("assertion") or "").strip()
    otp = str(fields.get("otp") or "").strip()
    if assertion:
        service(request).verify(who, session_of(request), purpose, assertion)
        return replace(who, mfa=True), WEBAUTHN
    if otp:
        from keyguard.vault.clients import ClientService

        token = auth.presented_token(request) or ""
        clients: ClientService = getattr(request.app.state, "clients", None) or ClientService(auth.vault_of(request))
        checked = clients.authenticate(token, who.source_ip, who.user_agent, who.request_id, otp=otp)
        return replace(who, mfa=checked.mfa), TOTP
    raise MfaRequiredError(
        f"{purpose.split(':', 1)[0]} needs a fresh second factor",
        hint="confirm with your security key, or enter a TOTP code",
    )
