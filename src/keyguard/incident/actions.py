"""The registry of playbook actions.

A playbook task names an action. ``manual`` tasks are done by a person
(``incident task ID TASK --note``); every other action is something keyguard
can do itself. The vault-facing code binds a handler to an action with
:func:`bind`; :meth:`IncidentService.run_actions` calls it with an
:class:`ActionContext` and records the evidence it returns on the task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from keyguard.errors import NotFoundError

if TYPE_CHECKING:
    from keyguard.incident.model import Incident, Task
    from keyguard.incident.service import IncidentService

MANUAL = "manual"


@dataclass(frozen=True)
class ActionSpec:
    """An action a playbook task may name."""

    name: str
    description: str

    @property
    def is_automatic(self) -> bool:
        """True unless a person performs the action."""
        return self.name != MANUAL


_SPECS = (
    ActionSpec("vault.compromise", "mark the leaked key versions compromised (blocked, tripwire)"),
    ActionSpec("vault.verify-dead", "attempt an operation with the leaked version and record the refusal"),
    ActionSpec("clients.suspend", "suspend the clients that used the key after the exposure"),
    ActionSpec("comply.obligations", "compute the regulators' deadlines for the incident"),
    ActionSpec("assess.run", "replay the audit log since the exposure and grade the risk"),
    ActionSpec("scan.trace", "scan git history and files for where and when the key leaked"),
    ActionSpec("vault.rotate", "generate a new key version"),
    ActionSpec("data.rewrap", "re-wrap every registered item under the new version"),
    ActionSpec("rollout.check", "check every consumer uses the new version"),
    ActionSpec("monitor.watch", "alert rules on the compromised version (tripwire) are live"),
    ActionSpec("report.write", "write the incident report"),
    ActionSpec("policy.check", "run the hardening policy checks"),
    ActionSpec(MANUAL, "done by a person, with a note"),
)

#: Every known action by name (read-only).
ACTIONS: Mapping[str, ActionSpec] = MappingProxyType({s.name: s for s in _SPECS})


@dataclass(frozen=True)
class ActionContext:
    """What a handler gets: the service, the incident as loaded, and the task to perform."""

    service: IncidentService
    incident: Incident
    task: Task


#: A handler performs the task and returns its evidence (raise a KeyguardError to fail it).
Handler = Callable[[ActionContext], dict[str, Any]]

_handlers: dict[str, Handler] = {}


def is_known(name: str) -> bool:
    """True when ``name`` is a registered action."""
    return name in ACTIONS


def bind(name: str, handler: Handler) -> None:
    """Bind the function that performs automatic action ``name``."""
    if name not in ACTIONS or name == MANUAL:
        raise NotFoundError(f"unknown automatic action {name!r}", hint="see keyguard.incident.actions.ACTIONS")
    _handlers[name] = handler


def handler(name: str) -> Handler | None:
    """The handler bound to ``name``, or None when nothing performs it yet."""
    return _handlers.get(name)


def unbind(name: str) -> None:
    """Remove the handler of ``name`` (tests, plugins being unloaded)."""
    _handlers.pop(name, None)
