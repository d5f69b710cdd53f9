"""Issue 13 points 2 and 3: keyguard's own operations are not the attacker; what was exposed stays exposed."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from keyguard.data.inventory import DataInventory
from keyguard.incident.service import IncidentService
from keyguard.response.respond import respond
from keyguard.response.steps import Responder
from keyguard.vault.clients import ClientService
from keyguard.vault.principal import parse_grants


@pytest.fixture
def leaked(vault, admin):  # type: ignore[no-untyped-def]
    vault.create_key(admin, "pay", "encrypt", tier="high")
    clients = ClientService(vault)
    clients.create(admin, "billing", "service", parse_grants(["pay:encrypt,decrypt"]))
    billing = clients.authenticate(clients.issue_token(admin, "billing")[0])
    inv = DataInventory(vault)
    for i in range(3):
        ct, _ = vault.encrypt(billing, "pay", f"row {i}".encode(), {"i": i})
        inv.register(admin, f"cards-{i}", "payment", 20_000, ct, {"i": i})
    exposed = vault.clock.now() + timedelta(microseconds=1)  # nothing but keyguard acts after the exposure
    return vault, IncidentService(vault.engine, vault.clock), exposed


def test_own_operations_are_not_the_attacker(leaked, admin) -> None:  # type: ignore[no-untyped-def]
    vault, incidents, exposed = leaked
    result = respond(vault, incidents, admin, [("pay", 1)], exposed, jurisdictions=["eu"])
    incident = incidents.get(result.incident)
    (assessment,) = incident.impact["assessments"]
    actors = {a["value"] for a in assessment["new_actors"]}
    assert not any(a.startswith(("keyguard:", "cli:")) for a in actors), actors
    assert assessment["refused"] == []  # the probe's refusal is keyguard's own
    assert not [a for a in incident.impact["anomalies"] if a["kind"] in ("new-client", "refused")]
    own = {(o["actor"], o["op"]) for o in assessment["own_operations"]}
    assert ("keyguard:probe:incident-1", "decrypt") in own or any(a.startswith("keyguard:probe") for a, _ in own)
    assert any(e.kind == "keyguard" and "own operations" in e.message for e in incident.timeline)


def test_exposed_items_survive_the_rewrap(leaked, admin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    vault, incidents, exposed = leaked
    result = respond(vault, incidents, admin, [("pay", 1)], exposed - timedelta(hours=1), jurisdictions=["eu"])
    first = incidents.get(result.incident)
    names = ["cards-0", "cards-1", "cards-2"]
    assert first.exposed_items == names
    grade = first.impact["grade"]
    # After the re-wrap every item is under v2; a re-assessment still knows what was exposed.
    assert all(d["version"] == 2 for d in DataInventory(vault).items(admin))
    Responder(vault, incidents, admin).assess(result.incident)
    again = incidents.get(result.incident)
    assert again.exposed_items == names
    assert {(i["name"], i["version"]) for i in again.impact["data_items"]} == {(n, 1) for n in names}
    assert again.impact["grade"] == grade
    assert again.impact["records"] == 60_000
    doc = again.to_dict()
    assert doc["exposed_items"] == names
    from keyguard.incident.report.render import render_report
    from keyguard.incident.report.sources import gather_report_data

    md = render_report(gather_report_data(incidents, result.incident), "md", "en").decode()
    assert "cards-1 (pay@1)" in md


def test_respond_and_show_agree_on_the_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 13 point 5: the same state gives the same exit code from ``respond`` and ``incident show``."""
    from keyguard.cli.main import main

    monkeypatch.setenv("KEYGUARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KEYGUARD_DATABASE_URL", raising=False)
    assert main(["init", "--root", "keyfile"]) == 0
    assert main(["key", "create", "pay", "--tier", "high"]) == 0
    capsys.readouterr()
    respond_code = main(
        ["respond", "--key", "pay@1", "--exposed-at", "-2h", "--jurisdiction", "eu,cn", "--yes", "--json"]
    )
    doc = json.loads(capsys.readouterr().out)
    show_code = main(["incident", "show", str(doc["incident"]), "--json"])
    capsys.readouterr()
    assert respond_code == show_code == 0
