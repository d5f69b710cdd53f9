"""IncidentService on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from keyguard.clock import FrozenClock
from keyguard.errors import ConflictError, NotFoundError, UsageError
from keyguard.incident import IncidentService, ItemState, Status
from keyguard.store.db import table_names

from .conftest import DETECTED, EXPOSED


def _open(service: IncidentService, **kw):  # type: ignore[no-untyped-def]
    args = {
        "keys": [("pay", 1), ("web-session", None)],
        "exposed_at": EXPOSED,
        "detected_at": DETECTED,
        "source": "github.com/acme/app commit abc123",
        "jurisdictions": ["eu", "cn"],
        "data_classes": ["pii"],
        "flags": ["relatively-major"],
    }
    args.update(kw)
    return service.open(**args)


def test_migration_creates_the_tables(engine: Engine) -> None:
    assert {
        "incidents",
        "incident_keys",
        "incident_tasks",
        "incident_obligations",
        "incident_timeline",
    } <= set(table_names(engine))


def test_open_and_get_round_trip(service: IncidentService) -> None:
    opened = _open(service)
    got = service.get(opened.id)
    assert got.to_dict() == opened.to_dict()
    assert [str(k) for k in got.keys] == ["pay@1", "web-session"]
    assert got.status is Status.OPEN
    assert [p.name for p in got.phases] == ["contain", "assess", "recover", "review"]
    assert got.phases[0].due_at == DETECTED + timedelta(hours=1)
    assert [o.regulation for o in got.obligations] == [
        "cn-dsl-art29",
        "cn-incident-measures",
        "cn-pipl-art57",
        "gdpr-art33",
    ]
    assert [e.kind for e in got.timeline] == ["detected", "opened"]


def test_list_filters(service: IncidentService) -> None:
    a = _open(service)
    b = _open(service, keys=[("other", 2)])
    service.advance_status(b.id, Status.CONTAINED)
    assert [i.id for i in service.list()] == [b.id, a.id]
    assert [i.id for i in service.list(status=Status.OPEN)] == [a.id]
    assert [i.id for i in service.list(key="other")] == [b.id]


def test_status_moves_forward_only_and_is_timestamped(service: IncidentService, clock: FrozenClock) -> None:
    inc = _open(service)
    service.advance_status(inc.id, "contained", {"refused": "version 1 is compromised"})
    clock.advance(timedelta(hours=2))
    service.advance_status(inc.id, Status.ASSESSED)
    with pytest.raises(ConflictError, match="cannot move to contained"):
        service.advance_status(inc.id, Status.CONTAINED)
    with pytest.raises(ConflictError):
        service.advance_status(inc.id, Status.ASSESSED)
    got = service.get(inc.id)
    assert got.status_history["contained"] == datetime(2026, 11, 27, 9, 10, tzinfo=UTC)
    assert got.status_history["assessed"] == datetime(2026, 11, 27, 11, 10, tzinfo=UTC)
    assert got.timeline[-2].data == {"refused": "version 1 is compromised"}


def test_complete_task_records_evidence(service: IncidentService) -> None:
    inc = _open(service)
    service.complete_task(inc.id, "compromise-key", evidence={"versions": ["pay@1"]})
    service.complete_task(inc.id, "inform-owner", note="paged alice", by="bob")
    got = service.get(inc.id)
    task = got.task("inform-owner")
    assert task is not None and task.done_by == "bob" and task.note == "paged alice"
    assert got.task("compromise-key").evidence == {"versions": ["pay@1"]}  # type: ignore[union-attr]
    with pytest.raises(ConflictError, match="already done"):
        service.complete_task(inc.id, "inform-owner")
    with pytest.raises(NotFoundError, match="no task"):
        service.complete_task(inc.id, "nope")


def test_phase_done_when_all_tasks_done(service: IncidentService) -> None:
    inc = _open(service)
    for task in inc.phases[0].tasks:
        service.complete_task(inc.id, task.id)
    got = service.get(inc.id)
    assert got.phases[0].state(datetime(2026, 11, 28, tzinfo=UTC)) is ItemState.DONE
    assert got.phases[1].done_at is None


def test_overdue_obligation_needs_attention(service: IncidentService, clock: FrozenClock) -> None:
    inc = _open(service, jurisdictions=["eu"], flags=[])
    assert [a for a in service.attention(inc.id) if a.startswith("obligation")] == []
    clock.advance(timedelta(hours=73))
    attention = service.attention(inc.id)
    assert "obligation gdpr-art33 overdue since 2026-11-30T09:00:00Z" in attention
    service.complete_obligation(inc.id, "gdpr-art33", reference="DPA-2026-123")
    assert not any("gdpr-art33" in a for a in service.attention(inc.id))


def test_determination_sets_the_sec_clock(service: IncidentService) -> None:
    inc = _open(service, jurisdictions=["us"], flags=["sec-registrant", "material"], data_classes=[])
    assert [(o.regulation, o.due_at) for o in inc.obligations] == [("sec-8k-item105", None)]
    got = service.update_facts(inc.id, determinations={"materiality": datetime(2026, 11, 24, 16, tzinfo=UTC)})
    assert got.obligations[0].due_at == datetime(2026, 12, 1, 22, 30, tzinfo=UTC)


def test_update_facts_adds_obligations_and_keeps_done_ones(service: IncidentService) -> None:
    inc = _open(service, jurisdictions=["eu"], flags=[])
    service.complete_obligation(inc.id, "gdpr-art33", "ref-1")
    got = service.update_facts(inc.id, add_flags=["high-risk"], severity="high", impact={"records": 1200})
    regs = {o.regulation: o for o in got.obligations}
    assert set(regs) == {"gdpr-art33", "gdpr-art34"}
    assert regs["gdpr-art33"].reference == "ref-1"
    again = service.get(inc.id)
    assert again.severity == "high" and again.impact == {"records": 1200}


def test_close_needs_recovered_unless_forced(service: IncidentService) -> None:
    inc = _open(service)
    with pytest.raises(ConflictError, match="not recovered"):
        service.close(inc.id)
    for status in (Status.CONTAINED, Status.ASSESSED, Status.ROTATED, Status.RECOVERED):
        service.advance_status(inc.id, status)
    closed = service.close(inc.id, root_cause="token committed to a public repo", note="done")
    assert closed.status is Status.CLOSED and closed.attention(datetime(2030, 1, 1, tzinfo=UTC)) == []
    with pytest.raises(ConflictError, match="closed"):
        service.complete_task(inc.id, "root-cause")
    other = _open(service)
    assert service.close(other.id, force=True, note="false positive").status is Status.CLOSED


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"keys": []}, "at least one key"),
        ({"keys": [("Bad Name", None)]}, "invalid key name"),
        ({"exposed_at": DETECTED + timedelta(hours=1)}, "exposed after"),
        ({"data_classes": ["medical"]}, "unknown data class"),
        ({"jurisdictions": ["E U"]}, "invalid jurisdiction"),
        ({"flags": ["hihg-risk"]}, "unknown flag 'hihg-risk'"),
    ],
)
def test_open_refuses_bad_input(sqlite_url: str, clock: FrozenClock, kw: dict, message: str) -> None:
    from keyguard.store.db import create_db_engine, migrate

    engine = create_db_engine(sqlite_url)
    migrate(engine)
    with pytest.raises(UsageError, match=message):
        _open(IncidentService(engine, clock), **kw)


def test_update_refuses_unknown_flags_and_determinations(service: IncidentService) -> None:
    inc = _open(service)
    with pytest.raises(UsageError, match="unknown flag"):
        service.update_facts(inc.id, add_flags=["materiel"])
    with pytest.raises(UsageError, match="unknown determination"):
        service.update_facts(inc.id, determinations={"material": DETECTED})
    assert service.get(inc.id).flags == ["relatively-major"]


def test_unknown_incident(service: IncidentService) -> None:
    with pytest.raises(NotFoundError):
        service.get(999)
