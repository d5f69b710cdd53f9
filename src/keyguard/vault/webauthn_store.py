"""WebAuthn second factors (FIDO2 security keys and passkeys) for people, with py_webauthn.

Two ceremonies, each started by a challenge and finished by the authenticator's answer:

* enrolment (registration): :meth:`WebAuthnService.registration_options` →
  ``navigator.credentials.create`` → :meth:`WebAuthnService.register`;
* assertion (authentication): :meth:`WebAuthnService.authentication_options` →
  ``navigator.credentials.get`` → :meth:`WebAuthnService.verify`.

A challenge is 32 random bytes, kept only as its SHA-256, bound to one client, one
session (the SHA-256 of the dashboard session token) and one purpose (``register``,
``login``, ``key.compromise:NAME:VERSION`` …), and valid for :data:`CHALLENGE_TTL`.
Finishing a ceremony first deletes the challenge (a conditional ``DELETE`` whose
row count decides, so two nodes on one database cannot both use it), then verifies:
a replayed, expired, foreign-session or other-purpose challenge is refused, and so
is an answer for another relying party id or origin. The signature counter must go
up (py_webauthn checks it, and the stored counter moves only by a conditional
``UPDATE``): a counter that does not is the sign of a cloned authenticator.

Every refusal is audited (``auth.webauthn`` / ``denied``), enrolment too
(``client.webauthn``); no challenge or signature is written to a message or a record.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from keyguard.clock import as_utc
from keyguard.errors import SecondFactorError, UsageError
from keyguard.store.db import write_tx
from keyguard.store.webauthn_tables import WebAuthnChallenge, WebAuthnCredential
from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault

CHALLENGE_TTL = timedelta(minutes=2)
CEREMONY_TIMEOUT_MS = 60_000
MAX_CREDENTIALS = 10
MAX_RESPONSE_BYTES = 16_384
NAME_MAX = 64


@dataclass(frozen=True)
class RelyingParty:
    """Who the authenticator signs for: the rp id (a registrable domain) and the exact origins allowed."""

    rp_id: str
    origins: tuple[str, ...]
    name: str = "keyguard"


def challenge_hash(challenge: bytes) -> str:
    """The stored form of a challenge (SHA-256, hex)."""
    return hashlib.sha256(challenge).hexdigest()


def _parse(credential: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(credential, dict):
        return credential
    if not isinstance(credential, str) or len(credential) > MAX_RESPONSE_BYTES:
        raise SecondFactorError("the authenticator's answer is not a credential (or too large)")
    try:
        parsed = json.loads(credential)
    except ValueError:
        raise SecondFactorError("the authenticator's answer is not JSON") from None
    if not isinstance(parsed, dict):
        raise SecondFactorError("the authenticator's answer is not a credential")
    return parsed


def _client_challenge(credential: dict[str, Any]) -> bytes:
    """The challenge the browser put in ``clientDataJSON`` (verified again by py_webauthn)."""
    from webauthn.helpers import base64url_to_bytes

    try:
        client_data = base64url_to_bytes(str(credential["response"]["clientDataJSON"]))
        challenge = base64url_to_bytes(str(json.loads(client_data)["challenge"]))
    except (KeyError, TypeError, ValueError):
        raise SecondFactorError("the authenticator's answer has no challenge") from None
    return challenge


def _raw_id(credential: dict[str, Any]) -> bytes:
    from webauthn.helpers import base64url_to_bytes

    try:
        return base64url_to_bytes(str(credential.get("rawId") or credential["id"]))
    except (KeyError, TypeError, ValueError):
        raise SecondFactorError("the authenticator's answer has no credential id") from None


class WebAuthnService:
    """Enrol and check WebAuthn authenticators of the vault's clients (people)."""

    def __init__(self, vault: Vault, rp: RelyingParty) -> None:
        self.vault = vault
        self.engine = vault.engine
        self.rp = rp

    # ------------------------------------------------------------------ credentials

    def has_credentials(self, client_id: int) -> bool:
        """True when the client has at least one enrolled authenticator."""
        with self.engine.connect() as conn:
            found = conn.execute(
                select(WebAuthnCredential.id).where(WebAuthnCredential.client_id == client_id).limit(1)
            ).first()
        return found is not None

    def credentials(self, client_id: int) -> list[dict[str, Any]]:
        """The client's authenticators (name, dates, counter): nothing secret."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    WebAuthnCredential.id,
                    WebAuthnCredential.name,
                    WebAuthnCredential.created_at,
                    WebAuthnCredential.last_used_at,
                    WebAuthnCredential.sign_count,
                )
                .where(WebAuthnCredential.client_id == client_id)
                .order_by(WebAuthnCredential.id)
            ).all()
        return [
            {
                "id": r.id,
                "name": r.name,
                "created_at": r.created_at,
                "last_used_at": r.last_used_at,
                "sign_count": r.sign_count,
            }
            for r in rows
        ]

    # ------------------------------------------------------------------ challenges

    def _new_challenge(self, principal: Principal, session_hash: str, purpose: str) -> bytes:
        client_id = _client_id(principal)
        if len(purpose) > 200:
            raise UsageError("purpose too long")
        challenge = secrets.token_bytes(32)
        now = self.vault.clock.now()
        with write_tx(self.engine) as conn:
            conn.execute(delete(WebAuthnChallenge).where(WebAuthnChallenge.expires_at < now))
            conn.execute(
                insert(WebAuthnChallenge).values(
                    challenge_hash=challenge_hash(challenge),
                    client_id=client_id,
                    session_hash=session_hash,
                    purpose=purpose,
                    expires_at=now + CHALLENGE_TTL,
                )
            )
        return challenge

    def _consume(self, principal: Principal, session_hash: str, purpose: str, challenge: bytes) -> None:
        """Delete the challenge (it is used now, whatever follows); refuse unless it was ours and live."""
        now = self.vault.clock.now()
        # Any presentation uses the challenge up, even a refused one (from another session, for another purpose).
        with write_tx(self.engine) as conn:
            taken = conn.execute(
                delete(WebAuthnChallenge)
                .where(WebAuthnChallenge.challenge_hash == challenge_hash(challenge))
                .returning(
                    WebAuthnChallenge.client_id,
                    WebAuthnChallenge.session_hash,
                    WebAuthnChallenge.purpose,
                    WebAuthnChallenge.expires_at,
                )
            ).first()
        if (
            taken is None
            or taken.client_id != _client_id(principal)
            or not hmac.compare_digest(taken.session_hash, session_hash)
            or taken.purpose != purpose
            or as_utc(taken.expires_at) <= now
        ):
            raise SecondFactorError(
                "unknown, used or expired WebAuthn challenge",
                hint="start the ceremony again; each challenge works once",
            )

    # ------------------------------------------------------------------ enrolment

    def registration_options(self, principal: Principal, session_hash: str) -> str:
        """``PublicKeyCredentialCreationOptions`` (JSON) for enrolling a new authenticator."""
        from webauthn import generate_registration_options, options_to_json
        from webauthn.helpers.structs import (
            AuthenticatorSelectionCriteria,
            PublicKeyCredentialDescriptor,
            ResidentKeyRequirement,
            UserVerificationRequirement,
        )

        client_id = _client_id(principal)
        with self.engine.connect() as conn:
            existing = [
                bytes(c)
                for c in conn.execute(
                    select(WebAuthnCredential.credential_id).where(WebAuthnCredential.client_id == client_id)
                ).scalars()
            ]
        if len(existing) >= MAX_CREDENTIALS:
            raise UsageError(f"at most {MAX_CREDENTIALS} authenticators per client")
        challenge = self._new_challenge(principal, session_hash, "register")
        options = generate_registration_options(
            rp_id=self.rp.rp_id,
            rp_name=self.rp.name,
            user_name=principal.name,
            user_id=client_id.to_bytes(8, "big"),
            user_display_name=principal.name,
            challenge=challenge,
            timeout=CEREMONY_TIMEOUT_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=c) for c in existing],
        )
        return str(options_to_json(options))

    def register(
        self, principal: Principal, session_hash: str, credential: str | dict[str, Any], name: str = "security key"
    ) -> int:
        """Check the authenticator's registration answer and store its public key; the credential's row id."""
        from webauthn import verify_registration_response
        from webauthn.helpers.exceptions import WebAuthnException

        label = (name.strip() or "security key")[:NAME_MAX]
        with self.vault.audited(principal, "client.webauthn", None) as ctx:
            parsed = _parse(credential)
            challenge = _client_challenge(parsed)
            self._consume(principal, session_hash, "register", challenge)
            try:
                verified = verify_registration_response(
                    credential=parsed,
                    expected_challenge=challenge,
                    expected_rp_id=self.rp.rp_id,
                    expected_origin=list(self.rp.origins),
                )
            except (WebAuthnException, KeyError, TypeError, ValueError) as exc:
                raise SecondFactorError(f"WebAuthn enrolment refused: {_why(exc)}") from None
            now = self.vault.clock.now()
            with write_tx(self.engine) as conn:
                dupe = conn.execute(
                    select(func.count())
                    .select_from(WebAuthnCredential)
                    .where(WebAuthnCredential.credential_id == verified.credential_id)
                ).scalar_one()
                if dupe:
                    raise SecondFactorError("this authenticator is enrolled already")
                row_id = int(
                    conn.execute(
                        insert(WebAuthnCredential)
                        .values(
                            client_id=_client_id(principal),
                            credential_id=verified.credential_id,
                            public_key=verified.credential_public_key,
                            sign_count=verified.sign_count,
                            name=label,
                            created_at=now,
                        )
                        .returning(WebAuthnCredential.id)
                    ).scalar_one()
                )
            ctx["reason"] = f"WebAuthn authenticator {row_id} ({label}) enrolled"
        return row_id

    # ------------------------------------------------------------------ assertion

    def authentication_options(self, principal: Principal, session_hash: str, purpose: str) -> str:
        """``PublicKeyCredentialRequestOptions`` (JSON) for an assertion for ``purpose``."""
        from webauthn import generate_authentication_options, options_to_json
        from webauthn.helpers.structs import PublicKeyCredentialDescriptor, UserVerificationRequirement

        if purpose == "register":
            raise UsageError("the purpose 'register' is for enrolment")
        client_id = _client_id(principal)
        with self.engine.connect() as conn:
            ids = [
                bytes(c)
                for c in conn.execute(
                    select(WebAuthnCredential.credential_id).where(WebAuthnCredential.client_id == client_id)
                ).scalars()
            ]
        if not ids:
            raise SecondFactorError("no WebAuthn authenticator enrolled", hint="enrol one on the Security page")
        challenge = self._new_challenge(principal, session_hash, purpose)
        options = generate_authentication_options(
            rp_id=self.rp.rp_id,
            challenge=challenge,
            timeout=CEREMONY_TIMEOUT_MS,
            allow_credentials=[PublicKeyCredentialDescriptor(id=c) for c in ids],
            user_verification=UserVerificationRequirement.PREFERRED,
        )
        return str(options_to_json(options))

    def verify(self, principal: Principal, session_hash: str, purpose: str, credential: str | dict[str, Any]) -> None:
        """Accept one assertion for ``purpose`` in this session, or raise :class:`SecondFactorError` (audited)."""
        try:
            self._verify(principal, session_hash, purpose, credential)
        except SecondFactorError as exc:
            self.vault.record(principal, "auth.webauthn", "denied", None, None, f"{purpose[:120]}: {exc.message}")
            raise

    def _verify(self, principal: Principal, session_hash: str, purpose: str, credential: str | dict[str, Any]) -> None:
        from webauthn import verify_authentication_response
        from webauthn.helpers.exceptions import WebAuthnException

        parsed = _parse(credential)
        challenge = _client_challenge(parsed)
        self._consume(principal, session_hash, purpose, challenge)
        raw_id = _raw_id(parsed)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(WebAuthnCredential.id, WebAuthnCredential.public_key, WebAuthnCredential.sign_count).where(
                    WebAuthnCredential.credential_id == raw_id,
                    WebAuthnCredential.client_id == _client_id(principal),
                )
            ).first()
        if row is None:
            raise SecondFactorError("this authenticator is not enrolled for you")
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self.rp.rp_id,
                expected_origin=list(self.rp.origins),
                credential_public_key=bytes(row.public_key),
                credential_current_sign_count=int(row.sign_count),
            )
        except (WebAuthnException, KeyError, TypeError, ValueError) as exc:
            raise SecondFactorError(f"WebAuthn assertion refused: {_why(exc)}") from None
        new_count = int(verified.new_sign_count)
        # Moves only forwards (or stays 0 for authenticators without a counter), even against a parallel use.
        counter_ok = WebAuthnCredential.sign_count < new_count if new_count > 0 else WebAuthnCredential.sign_count == 0
        with write_tx(self.engine) as conn:
            moved = conn.execute(
                update(WebAuthnCredential)
                .where(WebAuthnCredential.id == row.id, counter_ok)
                .values(sign_count=new_count, last_used_at=self.vault.clock.now())
            ).rowcount
        if moved != 1:
            raise SecondFactorError("WebAuthn assertion refused: the signature counter went back (cloned key?)")


def _client_id(principal: Principal) -> int:
    if principal.client_id is None:
        raise SecondFactorError("WebAuthn is for signed-in clients", hint="sign in with a client token")
    return principal.client_id


def _why(exc: Exception) -> str:
    """A one-line reason from py_webauthn's exception (its messages hold no secret), bounded."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]
