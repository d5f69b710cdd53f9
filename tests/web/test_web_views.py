"""Helpers of the dashboard that need no database or app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keyguard.store.db import create_db_engine
from keyguard.web import views
from keyguard.web.routes import _safe_next

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=42), "42s"),
        (timedelta(minutes=12, seconds=5), "12m"),
        (timedelta(hours=3, minutes=5), "3h 05m"),
        (timedelta(days=2, hours=4, minutes=30), "2d 4h"),
        (-timedelta(hours=8), "8h 00m"),
    ],
)
def test_span(delta: timedelta, text: str) -> None:
    assert views.span(delta) == text


def test_countdown_states() -> None:
    assert views.countdown(NOW + timedelta(hours=5), NOW)["state"] == "pending"
    soon = views.countdown(NOW + timedelta(minutes=20), NOW)
    assert soon == {"text": "due in 20m", "state": "soon", "due": "2026-11-28T12:20:00Z", "live": True}
    assert views.countdown(NOW - timedelta(hours=1), NOW)["text"] == "overdue by 1h 00m"
    late = views.countdown(NOW - timedelta(hours=1), NOW, done=NOW)
    assert late["state"] == "late" and late["text"] == "done 1h 00m late" and not late["live"]
    assert views.countdown(NOW + timedelta(hours=1), NOW, done=NOW)["text"] == "done"
    assert views.countdown(None, NOW)["text"] == "no fixed due time"
    assert views.short_time(datetime(2026, 11, 28, 9, 30)) == "2026-11-28 09:30 UTC"  # naive = UTC


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("/keys", "/keys"),
        ("//evil.example", "/"),
        ("https://evil.example", "/"),
        ("/\\evil", "/"),
        ("", "/"),
        (None, "/"),
        ("/login", "/"),
        ("/incidents/3", "/incidents/3"),
    ],
)
def test_safe_next(raw: str | None, safe: str) -> None:
    assert _safe_next(raw) == safe


def test_alerts_absent_without_the_monitor_tables(tmp_path: object) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path}/empty.db")
    try:
        assert views.alert_rows(engine) is None
        assert views.open_alert_count(engine) is None
    finally:
        engine.dispose()
