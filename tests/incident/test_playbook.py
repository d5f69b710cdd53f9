"""The leaked-key playbook: valid data, known actions, ordered deadlines, golden schedule."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keyguard.clock import FrozenClock
from keyguard.errors import DataFileError, NotFoundError
from keyguard.incident.actions import ACTIONS
from keyguard.incident.durations import parse_duration
from keyguard.incident.playbook import (
    PLAYBOOK_DIR,
    load_playbook,
    load_playbook_file,
    playbook_ids,
    schedule,
)

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("playbook_id", playbook_ids())
def test_every_action_exists_in_the_registry(playbook_id: str) -> None:
    spec = load_playbook(playbook_id)
    for phase in spec.phases:
        for task in phase.tasks:
            assert task.action in ACTIONS, task.id


@pytest.mark.parametrize("playbook_id", playbook_ids())
def test_deadlines_never_decrease(playbook_id: str) -> None:
    spec = load_playbook(playbook_id)
    dues = [parse_duration(p.due).span for p in spec.phases]
    assert dues == sorted(dues)
    for phase in spec.phases:
        assert all(parse_duration(t.due).span <= parse_duration(phase.due).span for t in phase.tasks)


def test_leaked_key_follows_the_sla_timeline() -> None:
    spec = load_playbook("leaked-key")
    assert [(p.id, p.starts, p.due) for p in spec.phases][:3] == [
        ("contain", "PT0S", "PT1H"),
        ("assess", "PT1H", "PT24H"),
        ("recover", "PT24H", "PT72H"),
    ]
    assert spec.phases[3].starts == "PT72H"
    actions = {t.action for p in spec.phases for t in p.tasks}
    assert {
        "vault.compromise",
        "vault.verify-dead",
        "assess.run",
        "vault.rotate",
        "data.rewrap",
        "rollout.check",
        "comply.obligations",
        "report.write",
        "manual",
    } <= actions


@pytest.mark.parametrize("playbook_id", playbook_ids())
def test_golden_schedule(playbook_id: str) -> None:
    clock = FrozenClock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
    phases = schedule(load_playbook(playbook_id), clock.now())
    got = [p.to_dict(clock.now()) for p in phases]
    path = GOLDEN / f"{playbook_id}.json"
    if os.environ.get("KEYGUARD_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert got == json.loads(path.read_text(encoding="utf-8"))


def _mutate(tmp_path: Path, old: str, new: str) -> Path:
    text = (PLAYBOOK_DIR / "leaked-key.yaml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "leaked-key.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("action: vault.rotate", "action: vault.rotate-all", "unknown action"),
        (
            "\n    due: PT72H\n",
            "\n    due: PT12H\n",
            "is due|due after its phase|deadlines decrease",
        ),
        ("zh: 编写事件报告", "zh: write the report", "no Chinese characters"),
        ("due: P4D", "due: four days", "invalid ISO 8601 duration"),
        ("id: root-cause", "id: write-report", "duplicate ids"),
        ("owner: keyguard\n", "owner: keyguard\n        colour: red\n", "Extra inputs"),
        ("phases:", "phases: [", "not valid YAML"),
    ],
)
def test_bad_playbook_refuses_to_load(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(DataFileError, match=message):
        load_playbook_file(_mutate(tmp_path, old, new))


def test_unknown_playbook() -> None:
    with pytest.raises(NotFoundError):
        load_playbook("nope")
