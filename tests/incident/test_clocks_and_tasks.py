"""Issue 13 points 4 and 5: regulators' clocks that mean what the law says, and SLA phases late
only for their required tasks (optional ones can be skipped with a reason)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from keyguard.cli.main import main
from keyguard.clock import FrozenClock
from keyguard.incident import IncidentService, ItemState
from keyguard.incident.obligations import Facts, default_catalog

from .conftest import DETECTED, EXPOSED


def _open(service: IncidentService, **kw):  # type: ignore[no-untyped-def]
    args = {
        "keys": [("pay", 1)],
        "exposed_at": EXPOSED,
        "detected_at": DETECTED,
        "source": "git",
        "jurisdictions": ["cn"],
        "data_classes": ["pii"],
        "flags": [],
    }
    args.update(kw)
    return service.open(**args)


def test_immediately_has_a_concrete_due_time_with_its_basis() -> None:
    facts = Facts(EXPOSED, DETECTED, frozenset({"cn"}), frozenset({"pii"}))
    obligations = {o.regulation: o for o in default_catalog().obligations(facts)}
    for regulation in ("cn-pipl-art57", "cn-dsl-art29"):
        ob = obligations[regulation]
        assert ob.due_at is not None and ob.due_at > DETECTED  # not overdue at t = 0
        assert ob.state(DETECTED + timedelta(seconds=1)) is ItemState.PENDING
        assert ob.due_basis is not None and "default" in ob.due_basis.en
        assert ob.to_dict(DETECTED)["due_basis"]["en"].startswith("immediately")


def test_show_is_not_overdue_at_detection_and_a_waiver_closes_a_duty(
    service: IncidentService, clock: FrozenClock
) -> None:
    inc = _open(service)
    assert [a for a in service.attention(inc.id) if a.startswith("obligation")] == []
    service.waive_obligation(inc.id, "cn-dsl-art29", "no data of Chinese users under the key")
    service.complete_obligation(inc.id, "cn-pipl-art57", reference="CAC-2026-7")
    clock.advance(timedelta(days=30))
    got = service.get(inc.id)
    assert not [a for a in got.attention(clock.now()) if a.startswith("obligation")]
    dsl = next(o for o in got.obligations if o.regulation == "cn-dsl-art29")
    assert dsl.state(clock.now()) is ItemState.NOT_APPLICABLE
    assert dsl.to_dict(clock.now())["not_applicable"] == "no data of Chinese users under the key"
    assert any("not applicable" in e.message for e in got.timeline)


def test_phase_is_late_only_for_required_tasks(service: IncidentService, clock: FrozenClock) -> None:
    inc = _open(service, jurisdictions=[])
    contain = inc.phases[0]
    optional = [t.id for t in contain.tasks if not t.required]
    assert optional == ["suspend-clients"]
    for task in contain.tasks:
        if task.required:
            service.complete_task(inc.id, task.id, "done")
    clock.advance(timedelta(hours=2))
    got = service.get(inc.id)
    assert got.phases[0].state(clock.now()) is ItemState.DONE
    assert not [a for a in got.attention(clock.now()) if "suspend-clients" in a]
    service.skip_task(inc.id, "suspend-clients", "no client used the key after the exposure")
    task = service.get(inc.id).task("suspend-clients")
    assert task is not None and task.state(clock.now()) is ItemState.NOT_APPLICABLE
    assert task.to_dict()["not_applicable"] == "no client used the key after the exposure"


def test_cli_skip_and_not_applicable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KEYGUARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KEYGUARD_DATABASE_URL", raising=False)
    assert main(["init"]) == 0  # only init creates the database
    capsys.readouterr()
    args = ["incident", "open", "--key", "pay@1", "--exposed-at", "-3h", "--detected-at", "-1m"]
    assert main([*args, "-j", "cn", "--data-class", "pii", "--json"]) == 0
    incident = json.loads(capsys.readouterr().out)["id"]
    assert main(["incident", "show", str(incident), "--json"]) == 0  # "immediately" is not overdue at t = 0
    capsys.readouterr()
    code = main(["incident", "task", str(incident), "suspend-clients", "--skip", "--reason", "none used it"])
    assert code == 0, capsys.readouterr().err
    code = main(["incident", "notified", str(incident), "-r", "cn-dsl-art29", "--not-applicable", "no CN data"])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["incident", "show", str(incident), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    dsl = next(o for o in doc["obligations"] if o["regulation"] == "cn-dsl-art29")
    assert dsl["status"] == "not-applicable"
    task = next(t for p in doc["phases"] for t in p["tasks"] if t["id"] == "suspend-clients")
    assert task["status"] == "not-applicable" and task["required"] is False
