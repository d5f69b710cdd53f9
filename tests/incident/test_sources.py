"""Report data gathered from the shared tables (audit events, data inventory)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from keyguard.incident import IncidentService
from keyguard.incident.report.sources import gather_report_data
from keyguard.store.tables import AuditEvent, DataItem

from .conftest import DETECTED, EXPOSED


def _ts(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_usage_and_items_come_from_the_store(service: IncidentService) -> None:
    rows = []
    for i in range(15):  # 04:00 .. 08:40, before the frozen clock
        at = EXPOSED - timedelta(hours=3) + timedelta(minutes=20 * i)
        rows.append(
            {
                "id": i + 1,
                "ts": _ts(at),
                "actor": "svc",
                "op": "decrypt",
                "key": "pay",
                "version": 1 if i % 5 else 2,
                "result": "ok" if i % 7 else "denied",
                "prev_hash": "0" * 64,
                "hash": f"{i:064d}",
            }
        )
    now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    items = [
        {"name": "a", "data_class": "pii", "records": 10, "key_name": "pay", "version": 1},
        {"name": "b", "data_class": "payment", "records": 5, "key_name": "pay", "version": 2},
        {"name": "c", "data_class": "pii", "records": 7, "key_name": "other", "version": 1},
    ]
    with service.engine.begin() as conn:
        conn.execute(insert(AuditEvent), rows)
        conn.execute(
            insert(DataItem),
            [
                {
                    **i,
                    "ciphertext": "kg:v1:x",
                    "created_at": now,
                    "updated_at": now,
                    "is_deleted": False,
                }
                for i in items
            ],
        )
    inc = service.open([("pay", 1)], EXPOSED, DETECTED, jurisdictions=["eu"], data_classes=["pii"])
    data = gather_report_data(service, inc.id)
    assert sum(p.count for p in data.usage) == 12  # version 2 events are not the leaked version
    assert sum(p.denied for p in data.usage) == 2
    assert [p.hour.minute for p in data.usage] == [0] * len(data.usage)
    assert [(d.name, d.records) for d in data.data_items] == [("a", 10)]


def test_assessed_items_and_anomalies_win(service: IncidentService) -> None:
    inc = service.open([("pay", None)], EXPOSED, DETECTED)
    service.update_facts(
        inc.id,
        impact={
            "data_items": [{"name": "x", "data_class": "pii", "records": 3, "key": "pay", "version": 1}],
            "anomalies": [{"at": "2026-11-27T08:00:00Z", "kind": "burst", "description": "400/min"}],
        },
    )
    service.record(inc.id, "alert", "compromised version used from 198.51.100.7")
    data = gather_report_data(service, inc.id)
    assert [(d.name, d.rewrapped) for d in data.data_items] == [("x", False)]
    assert [a.kind for a in data.anomalies] == ["burst", "alert"]


def test_aggregated_assessment_data_and_factors(service: IncidentService) -> None:
    inc = service.open([("pay", 1)], EXPOSED, DETECTED)
    service.update_facts(
        inc.id,
        impact={
            "data": [{"key": "pay", "version": 1, "class": "pii", "items": 40, "records": 900}],
            "factors": [{"factor": "tier", "weight": 2, "en": "The key is high tier.", "zh": "高等级密钥。"}],
        },
    )
    data = gather_report_data(service, inc.id)
    [row] = data.data_items
    assert (row.items, row.records, row.rewrapped) == (40, 900, True)  # nothing left under v1
    assert data.risk_factors == [("The key is high tier.", "高等级密钥。")]
