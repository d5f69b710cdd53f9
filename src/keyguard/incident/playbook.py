"""Playbooks: load the YAML, and turn it into a schedule of phases and tasks."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path

from keyguard.errors import NotFoundError
from keyguard.incident.datafiles import load_yaml_model
from keyguard.incident.durations import parse_duration
from keyguard.incident.model import LocalText, Phase, Task
from keyguard.incident.schema import PlaybookSpec, TextSpec

PLAYBOOK_DIR = Path(__file__).parent / "playbooks"
DEFAULT_PLAYBOOK = "leaked-key"


def playbook_ids() -> list[str]:
    """Ids of the playbooks shipped with keyguard."""
    return sorted(p.stem for p in PLAYBOOK_DIR.glob("*.yaml"))


def load_playbook_file(path: Path) -> PlaybookSpec:
    """Load and validate a playbook file (raises DataFileError when invalid)."""
    return load_yaml_model(path, PlaybookSpec)


@cache
def load_playbook(playbook_id: str = DEFAULT_PLAYBOOK) -> PlaybookSpec:
    """Load a shipped playbook by id."""
    path = PLAYBOOK_DIR / f"{playbook_id}.yaml"
    if playbook_id not in playbook_ids():
        raise NotFoundError(f"no playbook {playbook_id!r}", hint="known: " + ", ".join(playbook_ids()))
    return load_playbook_file(path)


def text(spec: TextSpec) -> LocalText:
    """The domain text of a validated text."""
    return LocalText(en=spec.en, zh=spec.zh)


def required_tasks(playbook_id: str) -> dict[str, bool]:
    """Task id → required, for a shipped playbook (every task required when it is unknown)."""
    try:
        spec = load_playbook(playbook_id)
    except NotFoundError:
        return {}
    return {t.id: t.required for p in spec.phases for t in p.tasks}


def schedule(spec: PlaybookSpec, detected_at: datetime) -> list[Phase]:
    """The phases and tasks of ``spec`` with due times counted from ``detected_at``."""
    return [
        Phase(
            name=phase.id,
            title=text(phase.title),
            due_at=parse_duration(phase.due).after(detected_at),
            tasks=[
                Task(
                    id=task.id,
                    phase=phase.id,
                    action=task.action,
                    owner=task.owner,
                    due_at=parse_duration(task.due).after(detected_at),
                    title=text(task.title),
                    required=task.required,
                )
                for task in phase.tasks
            ],
        )
        for phase in spec.phases
    ]
