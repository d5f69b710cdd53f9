from __future__ import annotations

from keyguard.incident.model import Status
from keyguard.incident.service import IncidentService
from keyguard.response.drill import run_drill


def test_drill_scores_and_cleans_up(vault, admin) -> None:
    incidents = IncidentService(vault.engine, vault.clock)
    result = run_drill(vault, incidents, admin, items=50)
    assert result.passed, result.checks
    assert {c["check"] for c in result.checks} >= {"leaked version refuses use", "all 50 items re-wrapped"}
    info = vault.key_info(result.key)
    assert all(v.state == "destroyed" for v in info.versions.values())
    assert incidents.get(result.incident).status is Status.CLOSED
