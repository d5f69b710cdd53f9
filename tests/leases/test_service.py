"""The service (``create_app(schedule=True)``, what ``keyguard serve`` runs) drops expired users by itself."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from keyguard.api.app import create_app
from keyguard.config import Settings
from keyguard.connectors.leases import LeaseManager

from .conftest import PgTarget, audit_events, pg_role_exists
from .test_cli_and_crash import TOML


def test_serve_drops_an_expired_user_within_five_seconds(db_url: str, vault, pg_target: PgTarget,
                                                         tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    settings.home.mkdir()
    settings.config_file.write_text(TOML.format(dsn=pg_target.dsn, template=pg_target.template))
    app = create_app(settings, vault, watch=False, schedule=True)
    issuer = LeaseManager(vault.engine, vault.audit, {"pg": pg_target.connector()})
    try:
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
            issued = issuer.issue("pg/role/readonly", timedelta(seconds=1), "tester")
            assert pg_role_exists(issued.username)
            deadline = issued.expires_at.timestamp() + 5
            while pg_role_exists(issued.username) and time.time() < deadline:
                time.sleep(0.05)
            gone_after = time.time() - issued.expires_at.timestamp()
            assert not pg_role_exists(issued.username), "user still there 5 s after expiry"
            assert gone_after <= 5
            assert app.state.scheduler.passes > 0
    finally:
        issuer.close()
    expired = [e for e in audit_events(vault) if e["op"] == "lease.expire"]
    assert [e["actor"] for e in expired] == ["keyguard:scheduler"]


def test_without_schedule_there_is_no_scheduler(vault) -> None:  # type: ignore[no-untyped-def]
    assert create_app(vault=vault, watch=False).state.scheduler is None
