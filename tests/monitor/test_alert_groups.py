"""Issue 13 point 13: alerts grouped by rule, key and source; business hours per key owner; ack from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine

from keyguard.monitor import alerts
from keyguard.monitor.detect import DetectionEngine, load_rules
from keyguard.monitor.detect.engine import AlertUpdate
from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.timeutil import epoch_ts

MONDAY_9 = 1_767_603_600.0  # 2026-01-05T09:00:00Z


def _office_key_then(hour_offset: float, key: str = "pay") -> list[MonitorEvent]:
    """Four office days (09-17 UTC) of a key's use, then one use ``hour_offset`` hours after the last one."""
    events, t = [], MONDAY_9
    for _day in range(4):
        for i in range(60):
            events.append(MonitorEvent(ts=epoch_ts(t + i * 480), op="decrypt", result="ok", key=key))
        t += 86400
    last = MONDAY_9 + 3 * 86400 + 59 * 480
    events.append(MonitorEvent(ts=epoch_ts(last + hour_offset * 3600), op="decrypt", result="ok", key=key))
    return events


def _rule():  # type: ignore[no-untyped-def]
    return next(r for r in load_rules() if r.id == "off-hours")


def test_business_hours_per_key_owner() -> None:
    rule = _rule()
    evening = _office_key_then(2)  # 18:52 UTC: inside the default business hours 07-20
    assert [u for u in DetectionEngine([rule]).process_many(evening) if u.is_new] == []
    night = _office_key_then(10)  # 02:52 UTC: outside, and the key is never used then
    assert len([u for u in DetectionEngine([rule]).process_many(night) if u.is_new]) == 1
    # An owner with other hours (configured in the rule's data): 18:52 is late for them.
    early = rule.model_copy(update={"params": {**rule.params, "business_hours": {"*": [7, 20], "early": [6, 16]}}})
    engine = DetectionEngine([early], owners={"pay": "early"})
    assert len([u for u in engine.process_many(evening) if u.is_new]) == 1


def _update(rule: str, key: str, actor: str, ts: str, disc: str) -> AlertUpdate:
    return AlertUpdate(
        rule=rule,
        severity="medium",
        key=key,
        group_key=f"{rule}-{key}-{disc}",
        title=f"{rule} on {key}",
        details={},
        ts=ts,
        is_new=True,
        count=3,
        first_ts=ts,
        event={"actor": actor, "source_ip": "10.0.0.1", "key": key},
    )


def test_repeated_alerts_group_by_rule_key_and_source(engine: Engine) -> None:
    updates = [
        _update("off-hours", "pay", "billing", f"2026-01-0{d}T02:00:00.000000Z", f"h{d}") for d in range(1, 6)
    ] + [_update("off-hours", "pay", "ledger", "2026-01-03T03:00:00.000000Z", "x")]
    ids = alerts.save_alerts(engine, updates)
    assert len(ids) == 6
    groups = alerts.list_alert_groups(engine, status=None)
    by_source = {g["source"]: g for g in groups}
    assert set(by_source) == {"billing", "ledger"}
    billing = by_source["billing"]
    assert (billing["alerts"], billing["count"]) == (5, 15)
    assert billing["first_seen"].startswith("2026-01-01") and billing["last_seen"].startswith("2026-01-05")
    assert alerts.get_alert(engine, ids[0])["source"] == "billing"
    acked = alerts.acknowledge_group(engine, ids[0], by="oncall")
    assert acked == ids[:5]
    assert [g["source"] for g in alerts.list_alert_groups(engine)] == ["ledger"]


def test_cli_ack_several_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from keyguard.cli.main import main
    from keyguard.config import Settings
    from keyguard.runtime import open_engine

    monkeypatch.setenv("KEYGUARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KEYGUARD_DATABASE_URL", raising=False)
    assert main(["init", "--root", "keyfile"]) == 0
    eng = open_engine(Settings.from_env())
    ids = alerts.save_alerts(
        eng, [_update("new-client", "pay", f"c{i}", f"2026-01-01T0{i}:00:00.000000Z", str(i)) for i in range(3)]
    )
    capsys.readouterr()
    assert main(["alert", "ack", str(ids[0]), str(ids[1]), "--by", "oncall", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [a["status"] for a in doc] == ["acknowledged", "acknowledged"]
    assert main(["alert", "list", "--group", "--json"]) == 0
    assert [g["source"] for g in json.loads(capsys.readouterr().out)] == ["c2"]
