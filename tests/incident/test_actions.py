"""The action registry and running automatic tasks through bound handlers."""

from __future__ import annotations

from typing import Any

import pytest

from keyguard.errors import KeyStateError, NotFoundError
from keyguard.incident import IncidentService, actions

from .conftest import DETECTED, EXPOSED


@pytest.fixture
def handlers(monkeypatch: pytest.MonkeyPatch) -> dict[str, actions.Handler]:
    table = dict(actions._handlers)
    monkeypatch.setattr(actions, "_handlers", table)
    return table


def test_bind_refuses_unknown_or_manual_actions(handlers: dict[str, actions.Handler]) -> None:
    with pytest.raises(NotFoundError):
        actions.bind("vault.nuke", lambda ctx: {})
    with pytest.raises(NotFoundError):
        actions.bind("manual", lambda ctx: {})


def test_run_actions_records_evidence_and_failures(
    service: IncidentService, handlers: dict[str, actions.Handler]
) -> None:
    def compromise(ctx: actions.ActionContext) -> dict[str, Any]:
        return {"versions": [str(k) for k in ctx.incident.keys]}

    def verify(ctx: actions.ActionContext) -> dict[str, Any]:
        raise KeyStateError("pay", 1, "active", "decrypt")

    actions.bind("vault.compromise", compromise)
    actions.bind("vault.verify-dead", verify)
    inc = service.open([("pay", 1)], EXPOSED, DETECTED, jurisdictions=["eu"], data_classes=["pii"])
    results = service.run_actions(inc.id)
    assert [(r.task, r.ok) for r in results] == [
        ("compromise-key", True),
        ("verify-dead", False),
        ("start-regulatory-clocks", True),
    ]
    got = service.get(inc.id)
    assert got.task("compromise-key").evidence == {"versions": ["pay@1"]}  # type: ignore[union-attr]
    assert got.task("verify-dead").done_at is None  # type: ignore[union-attr]
    assert got.task("start-regulatory-clocks").evidence["obligations"][0]["regulation"] == "gdpr-art33"  # type: ignore[union-attr]
    assert any(e.kind == "task-failed" for e in got.timeline)
    assert service.run_actions(inc.id, only={"vault.compromise"}) == []
