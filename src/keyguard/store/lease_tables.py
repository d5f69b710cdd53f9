"""Tables of dynamic credentials (leases) and scheduled rotations (migration ``0010``).

A lease row is written *before* its database or cache user exists (state ``pending``),
so a crash between the two never leaves a user nobody knows about: the reaper drops
the user of a pending lease that was never confirmed. No password is stored: dropping
the user needs only its name.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from keyguard.store.tables import Base


class Lease(Base):
    """One dynamic credential: who got which user for how long, and where it stands."""

    __tablename__ = "leases"
    __table_args__ = (Index("ix_leases_state_expires", "state", "expires_at"),)
    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    path: Mapped[str] = mapped_column(String(140), index=True)
    connector: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(64))
    backend: Mapped[str] = mapped_column(String(16))
    username: Mapped[str] = mapped_column(String(63), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(256), default="")
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    max_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str] = mapped_column(Text, default="")


class ScheduledRotation(Base):
    """One due rotation of a key, claimed by exactly one node (unique key and slot)."""

    __tablename__ = "scheduled_rotations"
    __table_args__ = (UniqueConstraint("key_name", "slot", name="uq_scheduled_rotations_slot"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_name: Mapped[str] = mapped_column(String(64), index=True)
    slot: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    node: Mapped[str] = mapped_column(String(128))
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[str] = mapped_column(Text, default="")
