from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from keyguard.crypto import envelope
from keyguard.data.inventory import DataInventory
from keyguard.errors import KeyStateError
from keyguard.incident.model import Status
from keyguard.incident.service import IncidentService
from keyguard.response import rollout
from keyguard.response.respond import respond
from keyguard.response.steps import Responder
from keyguard.vault.clients import ClientService
from keyguard.vault.principal import parse_grants


@pytest.fixture
def org(vault, admin):  # type: ignore[no-untyped-def]
    vault.create_key(admin, "pay", "encrypt", tier="high")
    clients = ClientService(vault)
    clients.create(admin, "billing", "service", parse_grants(["pay:encrypt,decrypt"]))
    clients.create(admin, "checkout", "service", parse_grants(["pay:decrypt"]))
    billing = clients.authenticate(clients.issue_token(admin, "billing")[0])
    checkout = clients.authenticate(clients.issue_token(admin, "checkout")[0])
    inv = DataInventory(vault)
    for i in range(5):
        ct, _ = vault.encrypt(billing, "pay", f"row {i}".encode(), {"i": i})
        inv.register(admin, f"orders-{i}", "payment", 1000, ct, {"i": i})
    return vault, billing, checkout, IncidentService(vault.engine, vault.clock)


def test_respond_end_to_end(org, admin, tmp_path: Path) -> None:
    vault, billing, checkout, incidents = org
    old, _ = vault.encrypt(billing, "pay", b"before")
    exposed = vault.clock.now() - timedelta(hours=2)
    result = respond(
        vault,
        incidents,
        admin,
        [("pay", None)],
        exposed,
        jurisdictions=["eu"],
        report_dir=tmp_path,
        report_formats=("md", "html"),
    )
    incident = incidents.get(result.incident)
    assert incident.status in (Status.ROTATED, Status.RECOVERED)
    assert result.contained_seconds < 5
    info = vault.key_info("pay")
    assert info.versions[1].state == "compromised" and info.active.version == 2
    with pytest.raises(KeyStateError, match="version 1 is compromised"):
        vault.decrypt(checkout, old)
    assert result.rewrapped == 5 and all(d["version"] == 2 for d in DataInventory(vault).items(admin))
    proofs = next(t for t in incident.tasks if t.action == "vault.verify-dead").evidence["proofs"]
    assert proofs and all(p["refused"] for p in proofs)
    assert {"gdpr-art33"} <= {o["regulation"] for o in result.obligations}
    assert set(result.reports) == {"en.md", "en.html", "zh.md", "zh.html"}
    assert "pay" in Path(result.reports["zh.md"]).read_text()
    assert result.attention  # consumers have not switched yet, notices are due


def test_respond_resumes_instead_of_duplicating(org, admin) -> None:
    vault, _billing, _checkout, incidents = org
    exposed = vault.clock.now() - timedelta(hours=1)
    first = respond(vault, incidents, admin, [("pay", 1)], exposed)
    second = respond(vault, incidents, admin, [("pay", 1)], exposed)
    assert first.incident == second.incident
    assert vault.key_info("pay").latest == 2  # no second rotation
    assert not any(o["regulation"] == "gdpr-art33" for o in second.obligations)
    third = respond(vault, incidents, admin, [("pay", 1)], exposed, jurisdictions=["eu"])
    assert third.incident == first.incident  # a jurisdiction named on a resumed run is recorded
    assert incidents.get(first.incident).jurisdictions == ["eu"]
    assert any(o["regulation"] == "gdpr-art33" for o in third.obligations)


def test_rollout_statuses_and_reference_update(org, admin, tmp_path: Path) -> None:
    vault, billing, checkout, incidents = org
    env_file = tmp_path / ".env"
    env_file.write_text("PAY=kg://pay/1\nOTHER=payroll@1\n")
    yaml_file = tmp_path / "app.yaml"
    yaml_file.write_text("key: pay@1\n")
    os.chmod(env_file, 0o640)
    old, _ = vault.encrypt(billing, "pay", b"x")
    vault.rotate(admin, "pay")
    vault.encrypt(billing, "pay", b"y")
    with pytest.raises(Exception):  # noqa: B017
        vault.set_state(admin, "pay", 1, "disabled")
        vault.decrypt(checkout, old)
    statuses = {s.client: s.status for s in rollout.consumers(vault, "pay")}
    assert statuses == {"billing": "switched", "checkout": "straggler"}
    assert rollout.percent_done(rollout.consumers(vault, "pay")) == 50.0
    allowed = rollout.RolloutPolicy(roots=(tmp_path,))
    diff = rollout.update_references(env_file, "pay", 2, vault.clock.now(), policy=allowed)
    assert "-PAY=kg://pay/1" in diff and "+PAY=kg://pay/2" in diff
    assert env_file.read_text() == "PAY=kg://pay/2\nOTHER=payroll@1\n"
    assert env_file.stat().st_mode & 0o777 == 0o640
    assert list(tmp_path.glob(".env.kg-bak-*"))[0].read_text() == "PAY=kg://pay/1\nOTHER=payroll@1\n"
    assert rollout.update_references(yaml_file, "pay", 2, vault.clock.now(), dry_run=True, policy=allowed)
    assert yaml_file.read_text() == "key: pay@1\n"
    assert rollout.update_references(env_file, "pay", 2, vault.clock.now(), policy=allowed) == ""


def test_contain_suspends_users_and_tripwire(org, admin) -> None:
    vault, billing, checkout, incidents = org
    alerts: list[str] = []
    vault.tripwire_hooks.append(lambda p, key, version, op: alerts.append(f"{p.actor}:{op}"))
    incident = incidents.open([("pay", 1)], vault.clock.now() - timedelta(hours=1))
    evidence = Responder(vault, incidents, admin).contain(incident.id, suspend_clients=True)
    assert evidence["suspended"] == ["billing"]
    assert incidents.get(incident.id).status is Status.CONTAINED
    assert alerts == []  # our own proof does not count as an attack …
    ct = envelope.Ciphertext("pay", 1, b"\0" * 40).text()
    with pytest.raises(KeyStateError):
        vault.decrypt(checkout, ct)
    assert alerts == ["checkout:decrypt"]  # … but a later use trips the wire


@pytest.mark.slow
def test_crash_during_respond_rotation_resumes(vault, admin, db_url: str, tmp_path: Path) -> None:
    """kill -9 during incident rotate + re-wrap, then rerun: nothing lost, nothing rotated twice."""
    import signal
    import time

    from tests.data.test_inventory import _all_decrypt, _moved, _seed

    vault.create_key(admin, "k", "encrypt")
    _seed(vault, 5000)
    incidents = IncidentService(vault.engine, vault.clock)
    incident = incidents.open([("k", 1)], vault.clock.now() - timedelta(hours=1))
    Responder(vault, incidents, admin).contain(incident.id)
    env = dict(
        os.environ,
        KEYGUARD_HOME=str(tmp_path / "home"),
        KEYGUARD_DATABASE_URL=db_url,
        KEYGUARD_KEYFILE=str(tmp_path / "root.key"),
    )
    cmd = [sys.executable, "-m", "keyguard", "incident", "rotate", str(incident.id), "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = False
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if _moved(vault, 2) > 0:  # rotated, and re-wrapping: die here
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.005)
    proc.wait()
    assert killed, "the rotation finished before it could be interrupted"
    vault._invalidate()
    _all_decrypt(vault, admin, 5000)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    vault._invalidate()
    assert _all_decrypt(vault, admin, 5000) == {2}
    assert vault.key_info("k").latest == 2
    assert json.loads(done.stdout)["rotated"][0]["version"] == 2


def test_alerts_join_the_incident_of_their_key(org, admin) -> None:
    from sqlalchemy import select

    from keyguard.monitor.detect.engine import AlertUpdate
    from keyguard.monitor.store import save_alerts
    from keyguard.store.monitor_tables import Alert

    vault, _billing, _checkout, incidents = org

    def alert(group: str) -> AlertUpdate:
        return AlertUpdate(
            rule="new-source-ip",
            severity="high",
            key="pay",
            group_key=group,
            title="new IP",
            details={},
            count=1,
            ts=vault.clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            first_ts="",
            is_new=True,
            event={},
        )

    save_alerts(vault.engine, [alert("before")])
    incident = incidents.open([("pay", 1)], vault.clock.now() - timedelta(hours=1))
    evidence = Responder(vault, incidents, admin).contain(incident.id)
    assert evidence["alerts_linked"] == 1
    save_alerts(vault.engine, [alert("after")])
    with vault.engine.connect() as conn:
        linked = dict(conn.execute(select(Alert.group_key, Alert.incident_id)).all())
    assert linked == {"before": incident.id, "after": incident.id}
