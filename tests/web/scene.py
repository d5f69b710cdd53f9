"""The dashboard tests' world: a vault with keys, clients, an open and a closed incident, an alert."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from sqlalchemy import insert

from keyguard.api.app import create_app
from keyguard.incident.service import IncidentService
from keyguard.vault.clients import ClientService
from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault
from keyguard.web.routes import include

RISK_FACTOR = "The key was used from 3 unfamiliar addresses after the exposure"
ALERT_TITLE = "Compromised key pay@1 used by an unknown client"


@dataclass
class Scene:
    """What the fixture put in the database, and the tokens that can see it."""

    vault: Vault
    incident_id: int
    closed_incident_id: int
    tokens: dict[str, str]


def _token(vault: Vault, admin: Principal, name: str, role: str) -> str:
    clients = ClientService(vault)
    clients.create(admin, name, role, [])
    token, _ = clients.issue_token(admin, name)
    return token


def build_scene(vault: Vault, admin: Principal) -> Scene:
    """Keys (one compromised), an open and a closed incident, an open alert, four clients."""
    vault.create_key(admin, "pay", "encrypt", tier="high", owner="payments")
    vault.rotate(admin, "pay")
    vault.set_state(admin, "pay", 1, "compromised", "leaked in a public repository")
    vault.create_key(admin, "web-sign", "sign", algorithm="ed25519", tier="medium")
    now = vault.clock.now()
    incidents = IncidentService(vault.engine, vault.clock)
    incident = incidents.open(
        [("pay", 1)],
        exposed_at=now - timedelta(hours=90),
        detected_at=now - timedelta(hours=80),
        source="github.com/acme/shop commit 1a2b3c",
        jurisdictions=["eu"],
        data_classes=["pii", "payment"],
        title="Payment key pushed to a public repository",
    )
    incidents.complete_task(incident.id, "compromise-key", note="version 1 compromised")
    incidents.update_facts(
        incident.id,
        severity="high",
        impact={"factors": [{"en": RISK_FACTOR, "zh": "暴露后该密钥被3个陌生地址使用"}]},
    )
    other = incidents.open([("web-sign", None)], exposed_at=now - timedelta(hours=2), title="Old false alarm")
    incidents.close(other.id, note="false positive", force=True)
    from keyguard.store.monitor_tables import Alert

    with vault.engine.begin() as conn:
        conn.execute(
            insert(Alert.__table__).values(
                rule="compromised-key-use",
                severity="high",
                key="pay",
                group_key="g1",
                title=ALERT_TITLE,
                details={"source_ip": "203.0.113.9"},
                count=3,
                first_seen="2026-11-28T10:00:00Z",
                last_seen="2026-11-28T10:05:00Z",
                status="open",
                created_at=datetime.now(UTC),
                updated_at=datetime.now(UTC),
                incident_id=incident.id,
            )
        )
    tokens = {role: _token(vault, admin, f"web-{role}", role) for role in ("admin", "operator", "auditor", "service")}
    return Scene(vault, incident.id, other.id, tokens)


def make_app(vault: Vault) -> FastAPI:
    """The API app with the dashboard included, as ``keyguard serve`` would build it."""
    app = create_app(vault=vault, watch=False)
    include(app)
    return app
