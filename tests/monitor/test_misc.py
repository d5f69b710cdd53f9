"""Metrics, sink configuration from keyguard.toml, stdin import, incident links."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from sqlalchemy import Engine

from keyguard.cli.alerts import build_sinks, monitor_config
from keyguard.config import Settings
from keyguard.errors import ConflictError, NotFoundError
from keyguard.monitor import alerts as alert_service
from keyguard.monitor.detect.engine import AlertUpdate
from keyguard.monitor.importers import ImportOptions
from keyguard.monitor.ingest import parse_target
from keyguard.monitor.store import import_stream, save_alerts


def _update(key: str = "pay") -> AlertUpdate:
    return AlertUpdate(
        rule="two-networks", severity="high", key=key, group_key=f"g-{key}", title="t",
        details={}, ts="2026-01-05T10:00:00.000000Z", is_new=True,
    )  # fmt: skip


def test_metrics_are_exposed(engine: Engine) -> None:
    line = json.dumps({"ts": "2026-01-05T10:00:00Z", "op": "decrypt", "result": "ok", "key": "m1"})
    import_stream(engine, parse_target_from_bytes(line.encode()))
    save_alerts(engine, [_update()])
    text = generate_latest().decode()
    assert 'keyguard_monitor_events_total{result="ok"}' in text
    assert "m1" not in text  # key names are not labels (unbounded, and not for scrapers)
    assert 'keyguard_alerts_total{rule="two-networks"}' in text


def parse_target_from_bytes(data: bytes) -> list[object]:
    from keyguard.monitor.importers import get_importer

    stream = io.BufferedReader(io.BytesIO(data))  # type: ignore[arg-type]
    return list(get_importer("jsonl")(stream, name=None, options=ImportOptions()))


def test_stdin_import(monkeypatch: pytest.MonkeyPatch) -> None:
    line = json.dumps({"ts": "2026-01-05T10:00:00Z", "op": "decrypt", "result": "ok"}) + "\n"
    fake = io.TextIOWrapper(io.BytesIO(line.encode() * 3))
    monkeypatch.setattr(sys, "stdin", fake)
    assert len(list(parse_target("-", "jsonl", ImportOptions()))) == 3


def test_sinks_from_keyguard_toml(tmp_path: Path) -> None:
    (tmp_path / "keyguard.toml").write_text(
        '[monitor]\nsinks = ["https://hooks.example/x", "syslog+udp://127.0.0.1:5514"]\n'
        'webhook_secret = "from-config"\n'
    )
    settings = Settings.from_env({"KEYGUARD_HOME": str(tmp_path)})
    sinks = build_sinks(["slack+https://hooks.example/y"], monitor_config(settings))
    assert [s.kind for s in sinks] == ["slack", "webhook", "syslog-udp"]
    assert all("from-config" not in s.name for s in sinks)


def test_alert_states_and_incident_link(engine: Engine) -> None:
    (first,) = save_alerts(engine, [_update("pay")])
    (second,) = save_alerts(engine, [_update("other")])
    assert alert_service.acknowledge(engine, first, by="bob")["acknowledged_by"] == "bob"
    with pytest.raises(ConflictError):
        alert_service.acknowledge(engine, first)
    assert alert_service.link_open_alerts(engine, "pay", 42) == 1
    assert alert_service.get_alert(engine, first)["incident_id"] == 42
    assert alert_service.link_incident(engine, second, 7)["incident_id"] == 7
    alert_service.close(engine, first)
    with pytest.raises(ConflictError):
        alert_service.close(engine, first)
    with pytest.raises(NotFoundError):
        alert_service.get_alert(engine, 999)
    assert [a["id"] for a in alert_service.list_alerts(engine)] == [second]
    assert len(alert_service.list_alerts(engine, status=None)) == 2
