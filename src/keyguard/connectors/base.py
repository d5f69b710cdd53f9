"""The interface the response steps call: one :class:`Adapter` per kind of resource.

An adapter declares the steps it performs in ``steps``; every other step raises
:class:`UnsupportedStepError` whose hint is the manual instruction (``manual``), so the
playbook can show it as a task. Results are plain frozen records; none carries a
credential except :attr:`Rotation.new_secret`, a :class:`Secret`.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from keyguard.clock import Clock, SystemClock
from keyguard.connectors.errors import MissingPermissionError, UnreachableError, UnsupportedStepError
from keyguard.connectors.refs import Ref
from keyguard.connectors.secret import Secret
from keyguard.errors import RefusedError


class Step(StrEnum):
    """The steps of SPEC §7, in playbook order."""

    IDENTIFY = "identify"
    INVENTORY = "inventory"
    CONTAIN = "contain"
    PROVE_DEAD = "prove_dead"
    USAGE_SINCE = "usage_since"
    ROTATE = "rotate"
    DELIVER = "deliver"
    CONSUMERS_SWITCHED = "consumers_switched"
    RETIRE = "retire"


@dataclass(frozen=True)
class Identified:
    """The resource that owns a leaked value."""

    ref: Ref
    owner: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Inventoried:
    """A credential or key the connector sees."""

    ref: Ref
    status: str
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What a contain, deliver or retire step did."""

    ref: Ref
    step: Step
    at: datetime
    actions: tuple[str, ...]
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Proof:
    """Whether the leaked value is refused by its system, with the evidence."""

    ref: Ref
    at: datetime
    is_dead: bool
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class UsageRecord:
    """One record of use from the system's own log.

    ``format`` names the importer that reads ``record``: ``cloudtrail`` (a CloudTrail
    record), ``vault-audit`` (a Vault/OpenBao audit entry) or ``event`` (SPEC §5's
    event shape without ``id``/``hash``).
    """

    ref: Ref
    format: str
    at: datetime | None
    record: dict[str, Any]


@dataclass(frozen=True)
class Rotation:
    """The result of a rotate step. ``detail`` is JSON-safe and enough for the later steps."""

    ref: Ref
    new_ref: Ref
    at: datetime
    new_secret: Secret | None = None
    rewrapped: tuple[tuple[str, str], ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Switched:
    """Whether the consumers moved to the new credential, from the system's own record."""

    ref: Ref
    is_switched: bool
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class PermissionCheck:
    """One permission the playbook needs; ``is_allowed`` None when it cannot be verified."""

    name: str
    is_allowed: bool | None
    detail: str = ""


@dataclass(frozen=True)
class CheckReport:
    """``connector check``: reachable, and allowed to do what the playbook needs."""

    connector: str
    type: str
    is_reachable: bool
    identity: str
    permissions: tuple[PermissionCheck, ...] = ()
    problem: str = ""

    @property
    def missing(self) -> tuple[str, ...]:
        """The permissions known to be refused."""
        return tuple(p.name for p in self.permissions if p.is_allowed is False)

    def raise_for_problem(self) -> None:
        """UnreachableError, RefusedError (own credentials refused) or MissingPermissionError (the first one)."""
        if not self.is_reachable:
            unreachable = UnreachableError(self.connector, self.type, "no answer")
            if self.problem:
                unreachable.message = self.problem
            raise unreachable
        if self.problem:
            raise RefusedError(self.problem, hint="check the connector's credentials (the *_env variables)")
        if self.missing:
            rest = self.missing[1:]
            raise MissingPermissionError(self.connector, self.missing[0],
                                         hint="also missing: " + ", ".join(rest) if rest else None)


class Adapter(ABC):  # noqa: B024 - every step has a default: the manual instruction
    """One kind of resource on one connector. Subclasses override the steps they support."""

    kind: ClassVar[str]
    steps: ClassVar[frozenset[Step]] = frozenset()
    manual: ClassVar[dict[Step, str]] = {}

    def __init__(self, connector: str, clock: Clock | None = None) -> None:
        self.connector = connector
        self.clock: Clock = clock or SystemClock()

    def ref(self, ident: str) -> Ref:
        """The reference of a resource of this kind on this connector."""
        return Ref(self.connector, self.kind, ident)

    def supports(self, step: Step) -> bool:
        """True when the adapter performs ``step`` (else it is a manual task)."""
        return step in self.steps

    def instructions(self, step: Step) -> str:
        """How to do ``step`` by hand."""
        return self.manual.get(step, f"no automated {step} for {self.kind}; do it in the system's console")

    def _unsupported(self, step: Step) -> UnsupportedStepError:
        return UnsupportedStepError(self.kind, step.value, self.instructions(step))

    def identify(self, leaked: Secret) -> Identified | None:  # noqa: ARG002 - the manual default
        """The resource of this kind that owns ``leaked``, or None. Never logs in with it."""
        raise self._unsupported(Step.IDENTIFY)

    def inventory(self) -> list[Inventoried]:
        """The resources of this kind the connector sees, with age and last use."""
        raise self._unsupported(Step.INVENTORY)

    def contain(self, ref: Ref) -> Outcome:  # noqa: ARG002 - the manual default
        """Stop every use of the resource now (deactivate, disable, revoke, cut sessions)."""
        raise self._unsupported(Step.CONTAIN)

    def prove_dead(self, ref: Ref, leaked: Secret | None = None, samples: Sequence[str] = ()) -> Proof:  # noqa: ARG002 - the manual default
        """Show that the system refuses the leaked value (or ``samples`` made with it)."""
        raise self._unsupported(Step.PROVE_DEAD)

    def usage_since(self, ref: Ref, since: datetime) -> list[UsageRecord]:  # noqa: ARG002 - the manual default
        """The system's own records of use of the resource since ``since``."""
        raise self._unsupported(Step.USAGE_SINCE)

    def rotate(self, ref: Ref, *, ciphertexts: Sequence[str] = (), checkpoint: Path | None = None) -> Rotation:  # noqa: ARG002 - the manual default
        """A new credential or key version; ``ciphertexts`` re-encrypted. Resumable with ``checkpoint``."""
        raise self._unsupported(Step.ROTATE)

    def deliver(self, rotation: Rotation, targets: Sequence[Path], old: Secret | None = None) -> Outcome:  # noqa: ARG002 - the manual default
        """Put the new value where the consumers read it."""
        raise self._unsupported(Step.DELIVER)

    def consumers_switched(self, rotation: Rotation) -> Switched:  # noqa: ARG002 - the manual default
        """Whether the consumers use the new credential (and nobody the old one)."""
        raise self._unsupported(Step.CONSUMERS_SWITCHED)

    def retire(self, rotation: Rotation) -> Outcome:  # noqa: ARG002 - the manual default
        """Delete or destroy the old credential once nobody uses it."""
        raise self._unsupported(Step.RETIRE)
