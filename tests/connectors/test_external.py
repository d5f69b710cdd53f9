"""The revoke-steps data file against the scanner's rule catalog: every rule resolves in its own family."""

from __future__ import annotations

import pytest

from keyguard.connectors.base import Step
from keyguard.connectors.errors import UnsupportedStepError
from keyguard.connectors.external import ExternalCredential, catalog, external_ref, parse_revoke_steps, revoke_steps
from keyguard.connectors.refs import KINDS
from keyguard.errors import DataFileError
from keyguard.scan.catalog import load_rules

RULES = load_rules(validate=False)


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_every_rule_has_revoke_steps_of_its_family(rule) -> None:  # type: ignore[no-untyped-def]
    entry = revoke_steps(rule.id)
    assert entry is not None, f"no entry in revoke_steps.toml matches rule {rule.id}"
    assert entry.family == rule.family, f"{rule.id} ({rule.family}) resolves to {entry.id} ({entry.family})"
    assert entry.link.startswith("https://") and entry.revoke


def test_every_family_has_an_entry_and_no_entry_is_dead() -> None:
    families = {r.family for r in RULES}
    assert families <= {e.family for e in catalog()}
    used = {revoke_steps(r.id).id for r in RULES}  # type: ignore[union-attr]
    assert used == {e.id for e in catalog()}, "entries that no rule reaches"
    assert all(e.connector in KINDS for e in catalog() if e.connector)


def test_external_adapter_is_all_manual_tasks() -> None:
    ref = external_ref("github-pat", "sha256:abc")
    assert str(ref) == "external/github-pat/sha256:abc" and ref.is_external
    adapter = ExternalCredential("github-pat")
    assert adapter.steps == frozenset()
    with pytest.raises(UnsupportedStepError) as caught:
        adapter.contain(ref)
    assert "github.com/settings/tokens" in caught.value.hint
    assert adapter.entry is not None and adapter.entry.steps[0].startswith("Open https://github.com/")
    assert "organisation audit log" in adapter.entry.steps[3]
    assert "connector" in ExternalCredential("postgres-url-password").instructions(Step.CONTAIN)


def test_bad_data_files_are_refused() -> None:
    good = '{ id = "a", family = "f", match = ["a-"], name = "A", link = "https://a", revoke = "r" }'
    with pytest.raises(DataFileError, match="duplicate"):
        parse_revoke_steps(f"provider = [{good}, {good}]")
    with pytest.raises(DataFileError, match="https"):
        parse_revoke_steps(f"provider = [{good.replace('https://a', 'http://a')}]")
    with pytest.raises(DataFileError, match="unknown"):
        parse_revoke_steps(f"provider = [{good.replace('revoke', 'revokes')}]")
