"""SQLAlchemy 2 tables of versioned secrets, on the shared ``Base`` (migration ``0009``).

A secret's value is stored only as ``sealed`` bytes (AES-256-GCM under a vault
key, the secret's name and version bound as associated data); a destroyed
version keeps its row with ``sealed`` erased, so metadata and audit stay.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from keyguard.store.tables import Base


class SecretVersionRow(Base):
    """One version of a named secret."""

    __tablename__ = "secret_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_secret_versions_name_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    origin: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    destroyed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
