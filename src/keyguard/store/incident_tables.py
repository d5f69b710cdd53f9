"""SQLAlchemy 2 tables of the incident domain, on the shared ``Base`` (migration ``0002``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from keyguard.store.tables import Base


class IncidentRow(Base):
    """One incident: the facts it was opened with and where it stands."""

    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), index=True)
    severity: Mapped[str] = mapped_column(String(16), default="unknown")
    source: Mapped[str] = mapped_column(Text, default="")
    playbook: Mapped[str] = mapped_column(String(64))
    exposed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    detected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    jurisdictions: Mapped[list[str]] = mapped_column(JSON, default=list)
    data_classes: Mapped[list[str]] = mapped_column(JSON, default=list)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    determinations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    impact: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    root_cause: Mapped[str] = mapped_column(Text, default="")
    status_history: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class IncidentKeyRow(Base):
    """A key (and version, when known) named by an incident."""

    __tablename__ = "incident_keys"
    __table_args__ = (Index("ix_incident_keys_key", "key_name", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    key_name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)


class IncidentTaskRow(Base):
    """A playbook task of an incident, and who did it when with what evidence."""

    __tablename__ = "incident_tasks"
    __table_args__ = (UniqueConstraint("incident_id", "task_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    phase: Mapped[str] = mapped_column(String(32))
    phase_due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    phase_title: Mapped[dict[str, Any]] = mapped_column(JSON)
    task_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(48))
    owner: Mapped[str] = mapped_column(String(64))
    title: Mapped[dict[str, Any]] = mapped_column(JSON)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    done_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class IncidentObligationRow(Base):
    """A notification duty of an incident; ``due_at`` is recomputed when the facts change."""

    __tablename__ = "incident_obligations"
    __table_args__ = (UniqueConstraint("incident_id", "regulation"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    regulation: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reference: Mapped[str] = mapped_column(Text, default="")
    note: Mapped[str] = mapped_column(Text, default="")


class IncidentTimelineRow(Base):
    """One entry of an incident's timeline (append only)."""

    __tablename__ = "incident_timeline"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
