"""Credentials no connector reaches (``external/RULE/FINGERPRINT``): the provider's revoke steps, as data.

``revoke_steps.toml`` holds one entry per provider, matched to a scan rule id by the longest
rule-id prefix in its ``match`` list. The :class:`ExternalCredential` adapter performs no
step; every step's instruction comes from that entry, so the playbook shows manual tasks.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from keyguard.connectors.base import Adapter, Step
from keyguard.connectors.refs import EXTERNAL, Ref
from keyguard.errors import DataFileError

DATA_FILE = "revoke_steps.toml"
_FIELDS = {"id", "family", "match", "name", "link", "revoke", "audit", "connector"}


@dataclass(frozen=True)
class RevokeSteps:
    """How to revoke one provider's credential by hand."""

    id: str
    family: str
    name: str
    link: str
    revoke: str
    audit: str
    match: tuple[str, ...]
    connector: str | None = None
    after: tuple[str, ...] = ()

    @property
    def steps(self) -> tuple[str, ...]:
        """The manual tasks in order: open the link, revoke, then the shared follow-ups."""
        return (f"Open {self.link} ({self.name})", self.revoke, *(a.replace("AUDIT", self.audit) for a in self.after))


def _entry(table: dict[str, Any], after: tuple[str, ...], where: str) -> RevokeSteps:
    unknown = set(table) - _FIELDS
    missing = {"id", "family", "match", "name", "link", "revoke"} - set(table)
    if unknown or missing:
        raise DataFileError(
            f"{where}: entry {table.get('id', '?')}: unknown {sorted(unknown)} / missing {sorted(missing)}")
    match = table["match"]
    if not isinstance(match, list) or not match or not all(isinstance(m, str) and m for m in match):
        raise DataFileError(f"{where}: entry {table['id']}: match must be a non-empty list of rule ids or prefixes")
    if not str(table["link"]).startswith("https://"):
        raise DataFileError(f"{where}: entry {table['id']}: link must be an https URL")
    return RevokeSteps(str(table["id"]), str(table["family"]), str(table["name"]), str(table["link"]),
                       str(table["revoke"]), str(table.get("audit", "its activity log")), tuple(match),
                       table.get("connector"), after)


def parse_revoke_steps(text: str, where: str = DATA_FILE) -> list[RevokeSteps]:
    """Parse and check the data file: unique ids and unique match prefixes."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataFileError(f"{where}: invalid TOML: {exc}") from None
    after = tuple(str(a) for a in document.get("defaults", {}).get("after", []))
    entries = [_entry(t, after, where) for t in document.get("provider", [])]
    if not entries:
        raise DataFileError(f"{where}: no provider entries")
    ids: set[str] = set()
    prefixes: set[str] = set()
    for entry in entries:
        if entry.id in ids:
            raise DataFileError(f"{where}: duplicate id {entry.id}")
        ids.add(entry.id)
        for prefix in entry.match:
            if prefix in prefixes:
                raise DataFileError(f"{where}: {prefix!r} matched by two entries")
            prefixes.add(prefix)
    return entries


@lru_cache(maxsize=1)
def catalog() -> tuple[RevokeSteps, ...]:
    """The built-in revoke steps, loaded once."""
    text = (resources.files("keyguard.connectors") / DATA_FILE).read_text(encoding="utf-8")
    return tuple(parse_revoke_steps(text))


def revoke_steps(rule_id: str) -> RevokeSteps | None:
    """The entry whose longest ``match`` prefix starts ``rule_id``, or None."""
    best: tuple[int, RevokeSteps] | None = None
    for entry in catalog():
        for prefix in entry.match:
            if rule_id.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), entry)
    return best[1] if best else None


def external_ref(rule_id: str, fingerprint: str) -> Ref:
    """``external/RULE/FINGERPRINT`` for a scan finding no connector owns."""
    return Ref(EXTERNAL, rule_id, fingerprint)


class ExternalCredential(Adapter):
    """A credential keyguard cannot act on: every step is a manual task with the provider's instructions."""

    kind = "rule"
    steps = frozenset()

    def __init__(self, rule_id: str) -> None:
        super().__init__(EXTERNAL)
        self.rule_id = rule_id
        self.entry = revoke_steps(rule_id)

    def instructions(self, step: Step) -> str:
        """The manual instruction for ``step``, from the provider's entry."""
        entry = self.entry
        if entry is None:
            return f"unknown rule {self.rule_id}: find the issuing system and revoke the credential there"
        by_step = {
            Step.CONTAIN: f"{entry.revoke} — {entry.link}",
            Step.PROVE_DEAD: f"call {entry.name} with the leaked value and record the refusal (401/403)",
            Step.USAGE_SINCE: f"export {entry.audit} from {entry.name} since the exposure time",
            Step.ROTATE: entry.after[0] if entry.after else f"create a replacement at {entry.link}",
            Step.DELIVER: "put the new value where each consumer reads it (secret store, CI variables, .env)",
            Step.CONSUMERS_SWITCHED: f"confirm in {entry.audit} that only the new credential is used",
            Step.RETIRE: f"confirm the old credential is deleted at {entry.link}",
        }
        if entry.connector:
            by_step[Step.CONTAIN] += f" (or configure a {entry.connector} connector and let keyguard do it)"
        return by_step.get(step, f"see {entry.link}")
