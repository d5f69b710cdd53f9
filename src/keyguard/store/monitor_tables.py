"""Tables of the monitor: imported event segments, alerts, deliveries and persisted watch state.

Declared on the shared :class:`keyguard.store.tables.Base`; created by migrations 0003 and 0005
(0006 adds ``alerts.source``).
They live in the store room, below the monitor that reads and writes them
(:mod:`keyguard.monitor.segments`, :mod:`keyguard.monitor.store`), so that
:mod:`keyguard.store.models` can register them without importing the monitor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import true

from keyguard.store.tables import Base

# BIGINT primary keys do not auto-increment on SQLite; INTEGER there, BIGINT elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class EventSegment(Base):
    """A batch of imported events, stored columnar (a zstd Parquet file) — see :mod:`keyguard.monitor.segments`."""

    __tablename__ = "event_segments"
    __table_args__ = (
        Index("ix_event_segments_source_ts", "source", "min_ts", "max_ts"),
        Index("ix_event_segments_detected", "detected"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    source_file: Mapped[str | None] = mapped_column(Text, nullable=True)
    rows: Mapped[int] = mapped_column(Integer)
    first_line: Mapped[int] = mapped_column(BigInteger)
    last_line: Mapped[int] = mapped_column(BigInteger)
    min_ts: Mapped[str] = mapped_column(String(32))
    max_ts: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # False from storage until the import's detection is committed with the detector's state:
    # after a crash, the next import detects these first.
    detected: Mapped[bool] = mapped_column(Boolean, server_default=true())
    data: Mapped[bytes] = mapped_column(LargeBinary)


class EventSegmentKey(Base):
    """Which keys a segment holds (``''`` for events without a key), how many events, over which times."""

    __tablename__ = "event_segment_keys"
    __table_args__ = (Index("ix_event_segment_keys_key", "key", "max_ts"),)
    segment_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("event_segments.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    rows: Mapped[int] = mapped_column(Integer)
    min_ts: Mapped[str] = mapped_column(String(32))
    max_ts: Mapped[str] = mapped_column(String(32))


class Alert(Base):
    """A grouped alert: one row per rule, key and discriminator within the group window.

    ``source`` (the event's actor, else its source IP; migration 0006) groups repeated
    alerts of one rule, key and source for the lists (``alert list --group``).
    """

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_group", "rule", "group_key", "status"),
        Index("ix_alerts_source_group", "rule", "key", "source"),
    )
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
    source: Mapped[str | None] = mapped_column(String(256), nullable=True)


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
