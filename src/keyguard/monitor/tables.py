"""Tables of the monitor: imported events, alerts, deliveries and persisted watch state.

Declared on the shared :class:`keyguard.store.tables.Base`; created by migration 0003.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from keyguard.store.tables import Base

# BIGINT primary keys do not auto-increment on SQLite; INTEGER there, BIGINT elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class ImportedEvent(Base):
    """An event imported from a foreign log (or keyguard's own JSONL)."""

    __tablename__ = "imported_events"
    __table_args__ = (Index("ix_imported_key_ts", "key", "ts"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    content_hash: Mapped[str] = mapped_column(String(32), unique=True)
    ts: Mapped[str] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(256))
    source_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(512), nullable=True)
    op: Mapped[str] = mapped_column(String(64))
    key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    result: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    source: Mapped[str] = mapped_column(String(16))
    source_file: Mapped[str | None] = mapped_column(Text, nullable=True)
    source_line: Mapped[int] = mapped_column(BigInteger)


class Alert(Base):
    """A grouped alert: one row per rule, key and discriminator within the group window."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_group", "rule", "group_key", "status"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(64), index=True)
    severity: Mapped[str] = mapped_column(String(8))
    key: Mapped[str | None] = mapped_column(String(256), nullable=True, index=True)
    group_key: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[str] = mapped_column(String(32))
    last_seen: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    incident_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)


class AlertDelivery(Base):
    """The outcome of delivering one alert to one sink (``delivered`` or ``dead``)."""

    __tablename__ = "alert_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    sink: Mapped[str] = mapped_column(String(256))
    outcome: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MonitorState(Base):
    """Named persisted state: watch cursors, detector snapshots, the fingerprint key."""

    __tablename__ = "monitor_state"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
