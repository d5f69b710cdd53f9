"""Table of the JWT signing keys (:mod:`keyguard.vault.jwks`); created by migration 0011.

One row per generation. ``generation`` is the primary key, so two nodes that
rotate at the same moment cannot both create generation *n + 1*: the second
insert fails and that node reads the winner's key. The newest generation is
the only one that signs. The private half is never stored: it is derived from
a sealed vault secret and ``salt``, and ``salt`` is erased when the key is
retired, so a retired key can verify (its public half stays) but never sign.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from keyguard.store.tables import Base


class JwtSigningKey(Base):
    """One generation of the access-token signing key."""

    __tablename__ = "jwt_signing_keys"
    generation: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    algorithm: Mapped[str] = mapped_column(String(8))
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    salt: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
