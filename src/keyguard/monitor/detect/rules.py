"""Detection rules as data: ``monitor/rules/*.yaml`` validated by pydantic at load.

A rule file holds one rule::

    id: new-source-ip
    kind: new_value            # which detector runs it
    severity: medium
    description: ...
    params: {field: source_ip, learn_events: 20}
    thresholds:                # per key tier, merged over params
      high: {learn_events: 5}
    examples:
      positive: [{name, events: [...], expect_alerts: 1}]
      negative: [{name, events: [...]}]

Example streams are lists of events or ``{repeat: N, every: SECONDS, event: {...}}``
blocks; times advance from ``start`` (see :func:`expand_stream`).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from keyguard.errors import DataFileError
from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.timeutil import epoch_ts, normalize_ts, ts_epoch

Kind = Literal["new_value", "rate_spike", "bad_version", "denied_burst", "off_hours", "two_networks"]
Severity = Literal["low", "medium", "high", "critical"]
TIERS = ("default", "low", "medium", "high")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NewValueParams(_Strict):
    """First-seen value of ``field`` for a key, once the key's baseline is learned."""

    field: Literal["source_ip", "user_agent", "actor"] = "source_ip"
    learn_events: int = Field(20, ge=0)
    learn_seconds: float = Field(3600, ge=0)
    max_values: int = Field(2000, ge=1)


class RateSpikeParams(_Strict):
    """Per-minute count against the same hour-of-day's median + k·MAD."""

    k: float = Field(6.0, gt=0)
    min_per_minute: int = Field(30, ge=1)
    factor: float = Field(3.0, ge=1)
    min_samples: int = Field(30, ge=1)
    history: int = Field(120, ge=10, le=2000)
    hard_limit: int | None = Field(None, ge=1)


class BadVersionParams(_Strict):
    """Use of a compromised / disabled version: by refusal reason or a version set."""

    reason_pattern: str = r"compromised|disabled|destroyed"
    versions: dict[str, list[int]] = Field(default_factory=dict)


class DeniedBurstParams(_Strict):
    """``threshold`` refused calls within ``window_seconds`` for one key (or actor)."""

    threshold: int = Field(10, ge=1)
    window_seconds: float = Field(60, gt=0)
    results: list[Literal["denied", "error"]] = Field(default=["denied"])


class OffHoursParams(_Strict):
    """Activity in an hour-of-day the key rarely uses (learned) or outside fixed hours."""

    learn_events: int = Field(200, ge=1)
    learn_seconds: float = Field(3 * 86400, ge=0)
    min_share: float = Field(0.01, ge=0, le=1)
    hours: tuple[int, int] | None = None
    # Business hours (UTC, [start, end)) per key owner, "*" for every other owner: use inside
    # them never alerts; outside them the learned rule (or fixed ``hours``) decides.
    business_hours: dict[str, tuple[int, int]] = Field(default_factory=dict)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not all(0 <= h <= 24 for h in value):
            raise ValueError("hours must be within 0..24")
        return value

    @field_validator("business_hours")
    @classmethod
    def _business(cls, value: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        for owner, hours in value.items():
            if not all(0 <= h <= 24 for h in hours):
                raise ValueError(f"business hours of {owner!r} must be within 0..24")
        return value

    def business_of(self, owner: str | None) -> tuple[int, int] | None:
        """The business hours of ``owner`` (else the ``*`` default, else none)."""
        return self.business_hours.get(owner or "", self.business_hours.get("*"))


class TwoNetworksParams(_Strict):
    """One key used from two networks (IPv4 /16, IPv6 /48) within ``window_seconds``."""

    window_seconds: float = Field(300, gt=0)
    ignore_private: bool = True


PARAMS: dict[str, type[_Strict]] = {
    "new_value": NewValueParams,
    "rate_spike": RateSpikeParams,
    "bad_version": BadVersionParams,
    "denied_burst": DeniedBurstParams,
    "off_hours": OffHoursParams,
    "two_networks": TwoNetworksParams,
}


class Example(_Strict):
    """An event stream and how many alerts of the rule it must raise."""

    name: str
    start: str = "2026-01-05T00:00:00Z"
    tiers: dict[str, str] = Field(default_factory=dict)
    compromised: dict[str, list[int]] = Field(default_factory=dict)
    events: list[dict[str, Any]]
    expect_alerts: int | None = None


class Examples(_Strict):
    """True- and false-positive streams, both required."""

    positive: list[Example] = Field(min_length=1)
    negative: list[Example] = Field(min_length=1)


class RuleSpec(_Strict):
    """One validated detection rule."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    kind: Kind
    description: str
    severity: Severity = "medium"
    enabled: bool = True
    group_window_seconds: float = Field(600, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)
    thresholds: dict[str, dict[str, Any]] = Field(default_factory=dict)
    examples: Examples

    @model_validator(mode="after")
    def _check_params(self) -> RuleSpec:
        for tier in self.thresholds:
            if tier not in TIERS:
                raise ValueError(f"unknown tier {tier!r} (use {', '.join(TIERS)})")
        for tier in TIERS:
            self.params_for(tier)
        return self

    def params_for(self, tier: str) -> Any:
        """The detector parameters for keys of ``tier`` (thresholds merged over params)."""
        merged = {
            **self.params,
            **self.thresholds.get("default", {}),
            **self.thresholds.get(tier, {}),
        }
        return PARAMS[self.kind].model_validate(merged)


def _builtin_files() -> list[Path]:
    folder = resources.files("keyguard.monitor") / "rules"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith((".yaml", ".yml")))


def load_rule_file(path: Path) -> RuleSpec:
    """Load and validate one rule file; any problem is a DataFileError naming the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        rule = RuleSpec.model_validate(data)
    except (OSError, yaml.YAMLError) as exc:
        raise DataFileError(f"cannot read rule file {path.name}: {type(exc).__name__}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DataFileError(
            f"invalid rule file {path.name}: {where}: {first['msg']}",
            hint="see monitor/rules/*.yaml",
        ) from None
    return rule


def load_rules(paths: Iterable[Path] | None = None) -> list[RuleSpec]:
    """Load the built-in rules (or ``paths``: files or folders); ids must be unique."""
    files: list[Path] = []
    for path in _builtin_files() if paths is None else paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        else:
            files.append(path)
    rules = [load_rule_file(f) for f in files]
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise DataFileError(f"duplicate rule id {rule.id!r}")
        seen.add(rule.id)
    return rules


_DEFAULT_EVENT = {
    "actor": "svc-a",
    "source_ip": "10.0.0.1",
    "user_agent": "app/1.0",
    "op": "decrypt",
    "key": "pay",
    "version": 1,
    "result": "ok",
}


def expand_stream(example: Example) -> list[MonitorEvent]:
    """Turn an example stream into events (``repeat`` blocks, ``after`` gaps, defaults)."""
    now = ts_epoch(normalize_ts(example.start))
    events: list[MonitorEvent] = []
    for item in example.events:
        if "repeat" in item:
            count, every = int(item["repeat"]), float(item.get("every", 60))
            template = item.get("event", {})
            cycle = template.get("cycle", {})
        else:
            count, every, template, cycle = 1, 0.0, item, {}
        now += float(template.get("after", item.get("after", 0)))
        for i in range(count):
            fields = {
                **_DEFAULT_EVENT,
                **{k: v for k, v in template.items() if k not in ("after", "cycle")},
            }
            for name, values in cycle.items():
                fields[name] = values[i % len(values)]
            events.append(
                MonitorEvent(
                    ts=epoch_ts(now),
                    op=fields["op"],
                    result=fields["result"],
                    key=fields["key"],
                    version=fields["version"],
                    actor=fields["actor"],
                    source_ip=fields["source_ip"],
                    user_agent=fields["user_agent"],
                    reason=fields.get("reason"),
                    source="example",
                    source_line=len(events) + 1,
                )
            )
            now += every
    return events
