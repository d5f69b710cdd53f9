"""Pydantic models that validate the playbook and regulation YAML files at load time."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from keyguard.errors import KeyguardError
from keyguard.incident.actions import ACTIONS
from keyguard.incident.durations import parse_duration

_CJK = re.compile(r"[\u4e00-\u9fff]")
_ID = r"^[a-z0-9][a-z0-9.-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_duration(value: str, *, exact: bool) -> str:
    try:
        parsed = parse_duration(value)
    except KeyguardError as exc:
        raise ValueError(exc.message) from None
    if exact and not parsed.is_exact:
        raise ValueError(f"{value!r}: calendar months are not allowed here")
    return value


class TextSpec(_Strict):
    """A text in English and Simplified Chinese; both are required."""

    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)

    @field_validator("zh")
    @classmethod
    def _zh_is_chinese(cls, value: str) -> str:
        if not _CJK.search(value):
            raise ValueError("the zh text has no Chinese characters")
        return value


class TaskSpec(_Strict):
    """A playbook task: what, who, and by when (ISO 8601 duration after detection)."""

    id: str = Field(pattern=_ID)
    action: str
    owner: str = Field(min_length=1)
    due: str
    title: TextSpec
    required: bool = True  # an optional task never makes its phase late

    @field_validator("action")
    @classmethod
    def _known_action(cls, value: str) -> str:
        if value not in ACTIONS:
            raise ValueError(f"unknown action {value!r}")
        return value

    @field_validator("due")
    @classmethod
    def _due(cls, value: str) -> str:
        return _check_duration(value, exact=True)


class PhaseSpec(_Strict):
    """A phase of the SLA timeline; its tasks are due no later than the phase."""

    id: str = Field(pattern=_ID)
    title: TextSpec
    starts: str
    due: str
    tasks: list[TaskSpec] = Field(min_length=1)

    @field_validator("starts", "due")
    @classmethod
    def _durations(cls, value: str) -> str:
        return _check_duration(value, exact=True)

    @model_validator(mode="after")
    def _tasks_within_phase(self) -> PhaseSpec:
        end = parse_duration(self.due).span
        if parse_duration(self.starts).span > end:
            raise ValueError(f"phase {self.id}: starts after it is due")
        for task in self.tasks:
            if parse_duration(task.due).span > end:
                raise ValueError(f"task {task.id} is due after its phase {self.id}")
        return self


class PlaybookSpec(_Strict):
    """A whole playbook: phases in order, unique task ids, deadlines never decreasing."""

    id: str = Field(pattern=_ID)
    version: int = Field(ge=1)
    title: TextSpec
    phases: list[PhaseSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _order(self) -> PlaybookSpec:
        ids = [t.id for p in self.phases for t in p.tasks] + [p.id for p in self.phases]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate ids: {', '.join(dupes)}")
        dues = [parse_duration(p.due).span for p in self.phases]
        if any(b < a for a, b in zip(dues, dues[1:], strict=False)):
            raise ValueError("phase deadlines decrease")
        return self


class ContentField(_Strict):
    """A piece of content a notice must carry, and which incident fact fills it."""

    id: str = Field(pattern=_ID)
    label: TextSpec
    fill: str = Field(pattern=r"^[a-z_]+$")


class TriggerSpec(_Strict):
    """When a regulation applies: every condition given must hold."""

    jurisdictions: list[str] = Field(min_length=1)
    personal_data: bool = False
    data_classes: list[str] = Field(default_factory=list)
    flags_all: list[str] = Field(default_factory=list)
    flags_any: list[str] = Field(default_factory=list)
    min_records: int = 0


class ExemptionSpec(_Strict):
    """An exemption: lifts the duty when ``when_flags`` hold, unless ``void_when_flags`` do."""

    id: str = Field(pattern=_ID)
    when_flags: list[str] = Field(min_length=1)
    void_when_flags: list[str] = Field(default_factory=list)
    note: TextSpec


ClockStart = Literal["detection", "exposure", "determination", "after"]


class ClockSpec(_Strict):
    """When the clock starts and how long it runs.

    ``start``: ``detection`` (awareness), ``exposure``, ``determination`` (named by
    ``determination``, e.g. materiality) or ``after`` another obligation (``after``:
    its regulation id; the clock starts when it is done, else at its due time).
    ``within`` is an ISO 8601 duration, ``business_days`` counts US business days
    ending at ``at`` (HH:MM) in ``timezone``; ``immediately`` runs for
    ``immediately_means.within`` (the implementing rule's deadline or a configured
    default, never PT0S, which would be overdue from the first second); none means
    "without undue delay" (no fixed due time). ``cap`` adds a "no later than" limit.
    """

    start: ClockStart
    determination: str | None = None
    after: str | None = None
    within: str | None = None
    business_days: int | None = Field(default=None, ge=1)
    at: str = Field(default="23:59", pattern=r"^\d\d:\d\d$")
    timezone: str = "UTC"
    immediately: bool = False
    immediately_means: ImmediateSpec | None = None
    cap: CapSpec | None = None

    @field_validator("within")
    @classmethod
    def _within(cls, value: str | None) -> str | None:
        return None if value is None else _check_duration(value, exact=False)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (install tzdata)") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ClockSpec:
        if self.start == "determination" and not self.determination:
            raise ValueError("start: determination needs determination: NAME")
        if self.start == "after" and not self.after:
            raise ValueError("start: after needs after: REGULATION-ID")
        if sum([self.within is not None, self.business_days is not None, self.immediately]) > 1:
            raise ValueError("give at most one of within, business_days, immediately")
        if self.immediately and self.immediately_means is None:
            raise ValueError("immediately needs immediately_means: the concrete deadline and where it comes from")
        if self.immediately_means is not None and not self.immediately:
            raise ValueError("immediately_means is only for immediately: true")
        return self


class ImmediateSpec(_Strict):
    """What "immediately" means as a due time: the authority's implementing rule, or a configured default.

    ``basis``: ``implementing-rule`` (``citation`` names the rule that sets the deadline)
    or ``default`` (keyguard's configured default, shown as such; change it here).
    """

    within: str
    basis: Literal["implementing-rule", "default"]
    note: TextSpec
    url: str | None = Field(default=None, pattern=r"^https?://")

    @field_validator("within")
    @classmethod
    def _within(cls, value: str) -> str:
        return _check_duration(value, exact=True)


class CapSpec(_Strict):
    """A "no later than" limit counted from detection or exposure."""

    start: Literal["detection", "exposure"]
    within: str

    @field_validator("within")
    @classmethod
    def _within(cls, value: str) -> str:
        return _check_duration(value, exact=False)


class SourceSpec(_Strict):
    """Where the duty comes from."""

    url: str = Field(pattern=r"^https?://")
    citation: str = Field(min_length=1)
    note: str = ""


class ExampleFacts(_Strict):
    """The fact pattern of a worked example."""

    exposed_at: str
    detected_at: str
    jurisdictions: list[str] = Field(default_factory=list)
    data_classes: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    records: int = 0
    determinations: dict[str, str] = Field(default_factory=dict)
    done: dict[str, str] = Field(default_factory=dict)


class ExampleSpec(_Strict):
    """A worked example: facts → does the regulation apply, and when is it due."""

    name: str
    facts: ExampleFacts
    applies: bool
    due: str | None = None
    exempt: str | None = None


class RegulationSpec(_Strict):
    """One notification duty of one regulation."""

    id: str = Field(pattern=_ID)
    title: TextSpec
    jurisdiction: str
    audience: TextSpec
    trigger: TriggerSpec
    exemptions: list[ExemptionSpec] = Field(default_factory=list)
    clock: ClockSpec
    deadline: TextSpec
    content: list[ContentField] = Field(min_length=1)
    source: SourceSpec
    examples: list[ExampleSpec] = Field(min_length=2)

    @model_validator(mode="after")
    def _examples_cover_both(self) -> RegulationSpec:
        if not any(e.applies for e in self.examples) or all(e.applies for e in self.examples):
            raise ValueError("examples must include a case that applies and one that does not")
        return self


ClockSpec.model_rebuild()
