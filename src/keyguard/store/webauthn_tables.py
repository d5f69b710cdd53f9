"""Tables of the WebAuthn second factor and of dashboard sessions (migration 0012).

``webauthn_credentials`` holds a person's enrolled security keys and passkeys: the
credential id, its COSE public key and the last signature counter seen (a counter
that does not go up means a cloned authenticator). ``webauthn_challenges`` holds
the outstanding ceremony challenges, by SHA-256 only, each bound to one dashboard
session and one purpose, deleted when used (single-use) and refused once expired.
``web_sessions`` records which dashboard sessions (SHA-256 of the session token)
passed the sign-in second factor.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from keyguard.store.tables import Base


class WebAuthnCredential(Base):
    """One enrolled authenticator of a client (a person using the dashboard)."""

    __tablename__ = "webauthn_credentials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebAuthnChallenge(Base):
    """An outstanding ceremony challenge (its SHA-256), for one session and one purpose."""

    __tablename__ = "webauthn_challenges"
    challenge_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    session_hash: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class WebSession(Base):
    """A dashboard session (SHA-256 of its token) that passed the sign-in second factor."""

    __tablename__ = "web_sessions"
    session_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    factor: Mapped[str] = mapped_column(String(16))
    verified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
