"""The regulations catalog and the engine that turns incident facts into obligations.

Each regulation file (``regulations/*.yaml``) states when a duty applies
(trigger, exemptions), when its clock starts and how long it runs. The engine
evaluates every file against the :class:`Facts` of an incident.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from keyguard.clock import parse_time
from keyguard.errors import DataFileError, NotFoundError
from keyguard.incident.business_days import add_business_days
from keyguard.incident.datafiles import load_yaml_model
from keyguard.incident.durations import parse_duration
from keyguard.incident.model import Incident, LocalText, Obligation
from keyguard.incident.schema import ClockSpec, ExampleFacts, ExemptionSpec, RegulationSpec

REGULATION_DIR = Path(__file__).parent / "regulations"

#: Data classes (SPEC §4 ``data register --class``) that hold personal data.
PERSONAL_CLASSES = frozenset({"pii", "payment", "credentials"})

#: Flags every leaked-key incident carries: the data is encrypted, and its key leaked.
IMPLIED_FLAGS = frozenset({"key-compromised", "data-encrypted"})


@dataclass(frozen=True)
class Facts:
    """What the engine needs to know about an incident."""

    exposed_at: datetime
    detected_at: datetime
    jurisdictions: frozenset[str] = frozenset()
    data_classes: frozenset[str] = frozenset()
    flags: frozenset[str] = frozenset()
    records: int = 0
    determinations: Mapping[str, datetime] = field(default_factory=dict)
    done: Mapping[str, datetime] = field(default_factory=dict)

    @property
    def has_personal_data(self) -> bool:
        """True when a personal data class is involved or the personal-data flag is set."""
        return bool(self.data_classes & PERSONAL_CLASSES) or "personal-data" in self.flags

    def in_jurisdiction(self, wanted: Iterable[str]) -> bool:
        """True when an incident jurisdiction is one of ``wanted`` or below one (us-ca under us)."""
        return any(j == w or j.startswith(w + "-") for j in self.jurisdictions for w in wanted)

    @classmethod
    def from_example(cls, example: ExampleFacts) -> Facts:
        """The facts of a worked example in a regulation file (flags as written, none implied)."""
        return cls(
            exposed_at=parse_time(example.exposed_at),
            detected_at=parse_time(example.detected_at),
            jurisdictions=frozenset(example.jurisdictions),
            data_classes=frozenset(example.data_classes),
            flags=frozenset(example.flags),
            records=example.records,
            determinations={k: parse_time(v) for k, v in example.determinations.items()},
            done={k: parse_time(v) for k, v in example.done.items()},
        )

    @classmethod
    def of(cls, incident: Incident) -> Facts:
        """The facts of a stored incident, with the implied leaked-key flags."""
        records = incident.impact.get("records", 0)
        return cls(
            exposed_at=incident.exposed_at,
            detected_at=incident.detected_at,
            jurisdictions=frozenset(incident.jurisdictions),
            data_classes=frozenset(incident.data_classes),
            flags=frozenset(incident.flags) | IMPLIED_FLAGS,
            records=records if isinstance(records, int) else 0,
            determinations=dict(incident.determinations),
            done={o.regulation: o.done_at for o in incident.obligations if o.done_at is not None},
        )


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one regulation for one incident."""

    spec: RegulationSpec
    applies: bool
    due_at: datetime | None = None
    exempt: ExemptionSpec | None = None

    def obligation(self) -> Obligation:
        """The obligation this evaluation creates (call only when it applies)."""
        s = self.spec
        return Obligation(
            regulation=s.id,
            title=LocalText(s.title.en, s.title.zh),
            audience=LocalText(s.audience.en, s.audience.zh),
            jurisdiction=s.jurisdiction,
            due_at=self.due_at,
            deadline=LocalText(s.deadline.en, s.deadline.zh),
            source=s.source.url,
            due_basis=due_basis(s),
        )


def _triggered(spec: RegulationSpec, facts: Facts) -> bool:
    t = spec.trigger
    return (
        facts.in_jurisdiction(t.jurisdictions)
        and (not t.personal_data or facts.has_personal_data)
        and (not t.data_classes or bool(facts.data_classes & set(t.data_classes)))
        and set(t.flags_all) <= facts.flags
        and (not t.flags_any or bool(facts.flags & set(t.flags_any)))
        and facts.records >= t.min_records
    )


def _exemption(spec: RegulationSpec, facts: Facts) -> ExemptionSpec | None:
    for ex in spec.exemptions:
        if set(ex.when_flags) <= facts.flags and not facts.flags & set(ex.void_when_flags):
            return ex
    return None


def due_basis(spec: RegulationSpec) -> LocalText | None:
    """Where the due time of an "immediately" duty comes from (shown next to it), else None."""
    means = spec.clock.immediately_means
    if means is None:
        return None
    if means.basis == "default":
        return LocalText(
            f"immediately: configured default of {means.within} ({means.note.en})",
            f"立即：按配置的默认时限 {means.within}（{means.note.zh}）",
        )
    return LocalText(
        f"immediately: {means.within} per {means.note.en}",
        f"立即：依据{means.note.zh}，时限 {means.within}",
    )


def _run(clock: ClockSpec, start: datetime) -> datetime | None:
    if clock.immediately and clock.immediately_means is not None:
        return parse_duration(clock.immediately_means.within).after(start)
    if clock.within is not None:
        return parse_duration(clock.within).after(start)
    if clock.business_days is not None:
        zone = ZoneInfo(clock.timezone)
        day = add_business_days(start.astimezone(zone).date(), clock.business_days)
        hour, minute = (int(x) for x in clock.at.split(":"))
        return datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)
    return None  # without undue delay: no fixed due time


def compute_due(clock: ClockSpec, facts: Facts, due_of: Mapping[str, datetime | None]) -> datetime | None:
    """The due time of a duty whose clock is ``clock``; None when not fixed (yet)."""
    start: datetime | None
    if clock.start == "detection":
        start = facts.detected_at
    elif clock.start == "exposure":
        start = facts.exposed_at
    elif clock.start == "determination":
        start = facts.determinations.get(clock.determination or "")
    else:
        after = clock.after or ""
        start = facts.done.get(after) or due_of.get(after)
    due = _run(clock, start) if start is not None else None
    if clock.cap is not None:
        cap_start = facts.detected_at if clock.cap.start == "detection" else facts.exposed_at
        cap = parse_duration(clock.cap.within).after(cap_start)
        due = cap if due is None else min(due, cap)
    return due


class RegulationCatalog:
    """Every regulation file of a directory, validated, in dependency order."""

    def __init__(self, specs: Iterable[RegulationSpec]) -> None:
        self.specs: dict[str, RegulationSpec] = {}
        for spec in specs:
            if spec.id in self.specs:
                raise DataFileError(f"duplicate regulation id {spec.id!r}")
            self.specs[spec.id] = spec
        for spec in self.specs.values():
            after = spec.clock.after
            if after is not None and after not in self.specs:
                raise DataFileError(f"{spec.id}: clock starts after unknown regulation {after!r}")

    @classmethod
    def load(cls, directory: Path = REGULATION_DIR) -> RegulationCatalog:
        """Load and validate every ``*.yaml`` file of ``directory``."""
        specs = [load_yaml_model(p, RegulationSpec) for p in sorted(directory.glob("*.yaml"))]
        for path, spec in zip(sorted(directory.glob("*.yaml")), specs, strict=True):
            if path.stem != spec.id:
                raise DataFileError(f"{path.name} holds regulation {spec.id!r}", hint="name the file after its id")
        return cls(specs)

    def known_flags(self) -> frozenset[str]:
        """Every flag a trigger or exemption of the catalog looks at (plus the implied ones)."""
        flags = set(IMPLIED_FLAGS) | {"personal-data"}
        for spec in self.specs.values():
            flags |= set(spec.trigger.flags_all) | set(spec.trigger.flags_any)
            for ex in spec.exemptions:
                flags |= set(ex.when_flags) | set(ex.void_when_flags)
        return frozenset(flags)

    def known_determinations(self) -> frozenset[str]:
        """Names of the determinations that start a clock (materiality, major-classification)."""
        return frozenset(s.clock.determination for s in self.specs.values() if s.clock.determination)

    def get(self, regulation_id: str) -> RegulationSpec:
        """The regulation ``regulation_id``."""
        try:
            return self.specs[regulation_id]
        except KeyError:
            raise NotFoundError(f"no regulation {regulation_id!r}", hint="known: " + ", ".join(self.specs)) from None

    def _ordered(self) -> list[RegulationSpec]:
        done: list[RegulationSpec] = []
        pending = list(self.specs.values())
        while pending:
            ready = [s for s in pending if s.clock.after is None or s.clock.after in {d.id for d in done}]
            if not ready:
                raise DataFileError("regulation clocks depend on each other in a cycle")
            done += ready
            pending = [s for s in pending if s not in ready]
        return done

    def evaluate(self, facts: Facts) -> list[Evaluation]:
        """Evaluate every regulation against ``facts`` (catalog order)."""
        due_of: dict[str, datetime | None] = {}
        results: dict[str, Evaluation] = {}
        for spec in self._ordered():
            if not _triggered(spec, facts):
                results[spec.id] = Evaluation(spec, applies=False)
                continue
            exempt = _exemption(spec, facts)
            if exempt is not None:
                results[spec.id] = Evaluation(spec, applies=False, exempt=exempt)
                continue
            due = compute_due(spec.clock, facts, due_of)
            due_of[spec.id] = due
            results[spec.id] = Evaluation(spec, applies=True, due_at=due)
        return [results[i] for i in self.specs]

    def obligations(self, facts: Facts) -> list[Obligation]:
        """The obligations ``facts`` create, sorted by due time (unknown due times last)."""
        found = [e.obligation() for e in self.evaluate(facts) if e.applies]
        far = datetime.max.replace(tzinfo=UTC)
        return sorted(found, key=lambda o: (o.due_at or far, o.regulation))


@cache
def default_catalog() -> RegulationCatalog:
    """The catalog shipped with keyguard (loaded once)."""
    return RegulationCatalog.load()
