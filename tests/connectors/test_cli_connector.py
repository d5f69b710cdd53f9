"""The ``connector`` group and the ``--resource`` steps on the command line, on the local Redis and PostgreSQL.

Redis ACL users are the quickest real system to act on, so the step-by-step incident
commands, the manual tasks and the errors of SPEC §4 are shown on them; the other
systems go through the same code (tests/connectors/test_e2e_scan_respond.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from .conftest import Kg

pytestmark = pytest.mark.slow
URL = "redis://127.0.0.1:6379/0"


def _add(kg: Kg, name: str, admin: tuple[str, str]) -> None:
    kg("connector", "add", name, "--type", "redis", "--set", f"url={URL}", "--set", f"username={admin[0]}",
       "--secret-stdin", "password", stdin=admin[1])


def test_add_list_check_identify_inventory(kg: Kg, users: Callable[..., tuple[str, str]], tmp_path: Path) -> None:
    admin = users("~*", "&*", "+@all")
    app, leaked = users("~app:*", "+get")
    _add(kg, "cache", admin)
    home = tmp_path / "home"
    assert admin[1] not in (home / "keyguard.toml").read_text()
    assert admin[1].encode() not in (home / "connectors.sealed").read_bytes()
    assert (home / "connectors.sealed").stat().st_mode & 0o777 == 0o600
    listed = json.loads(kg("connector", "list", "--json").stdout)
    assert listed == [{"name": "cache", "type": "redis", "kinds": ["user"],
                       "settings": {"url": URL, "username": admin[0]}, "credentials": {"password": "sealed"}}]
    checked = json.loads(kg("connector", "check", "cache", "--json").stdout)
    assert checked["reachable"] and checked["missing"] == []
    hit = json.loads(kg("connector", "identify", "cache", "--json", stdin=leaked + "\n").stdout)
    assert hit["resource"] == f"cache/user/{app}"
    missed = kg("connector", "identify", "cache", stdin="not-a-password-of-anyone", code=4)
    assert missed.stderr.startswith("keyguard: error: no resource of connector 'cache' owns this value")
    inventory = json.loads(kg("connector", "inventory", "cache", "--json").stdout)
    assert f"cache/user/{app}" in {i["resource"] for i in inventory}
    for out in (missed.stderr, kg("audit", "export", "--format", "jsonl").stdout):
        assert leaked not in out and admin[1] not in out


def test_errors_have_one_line_and_the_spec_exit_code(kg: Kg, users: Callable[..., tuple[str, str]],
                                                     tmp_path: Path) -> None:
    weak = users("~*", "+acl|getuser", "+acl|list", "+acl|log", "+client|list", "+acl|whoami", "+acl|dryrun",
                 "+acl|setuser")
    _add(kg, "weak", weak)
    refused = kg("connector", "check", "weak", code=3)
    assert "lacks permission CLIENT KILL USER" in refused.stderr and len(refused.stderr.splitlines()) == 1
    kg("connector", "check", "nosuch", code=4)
    plain = kg("connector", "add", "x", "--type", "redis", "--set", f"url={URL}", "--set", "password=hunter22",
               code=2)
    assert "must not be written in keyguard.toml" in plain.stderr and "hunter22" not in plain.stderr
    kg("connector", "add", "y", "--type", "redis", "--set", "url=redis://u:hunter22@127.0.0.1:6379/0", code=2)
    kg("connector", "add", "weak", "--type", "redis", "--set", f"url={URL}", code=2)  # exists
    kg("connector", "add", "weak", "--type", "redis", "--secret-stdin", "password", stdin=weak[1])  # sealed again
    kg("connector", "add", "z", "--type", "nosql", "--set", f"url={URL}", code=2)
    kg("respond", "--resource", "not-a-ref", "--yes", code=2)
    kg("respond", "--resource", "nosuch/user/x", "--exposed-at", "-1h", "--yes", code=4)
    kg("respond", "--resource", "weak/role/x", "--exposed-at", "-1h", "--yes", code=2)  # no such kind
    kg("respond", "--resource", "weak/user/x", "--yes", code=2)  # no incident, no --exposed-at
    # a second factor for connector configuration, like every administrative operation
    kg("client", "create", "ops", "--role", "admin")
    token = json.loads(kg("client", "token", "ops", "--json").stdout)["token"]
    mfa = kg("connector", "add", "w", "--type", "redis", "--set", f"url={URL}", code=3,
             extra={"KEYGUARD_TOKEN": token, "KEYGUARD_MFA": "required"})
    assert "connector.config needs a second factor" in mfa.stderr
    assert "[connectors.w]" not in (tmp_path / "home" / "keyguard.toml").read_text()


def test_incident_steps_one_by_one_on_a_redis_user(kg: Kg, users: Callable[..., tuple[str, str]],
                                                   root: redis.Redis, tmp_path: Path) -> None:
    admin = users("~*", "&*", "+@all")
    app, leaked = users("~app:*", "+get", "+ping")
    _add(kg, "cache", admin)
    consumer = tmp_path / "consumer"
    consumer.mkdir()
    (consumer / "app.env").write_text(f"REDIS_URL=redis://{app}:{leaked}@127.0.0.1:6379/0\n")
    toml = tmp_path / "home" / "keyguard.toml"
    toml.write_text(f'[rollout]\nroots = ["{consumer}"]\n\n' + toml.read_text())
    ref = f"cache/user/{app}"
    opened = json.loads(kg("incident", "open", "--resource", ref, "--exposed-at", "-2h", "--leaked-stdin", "--json",
                           stdin=leaked).stdout)
    iid = str(opened["id"])
    assert opened["impact"]["resource"] == ref and opened["title"] == f"Leaked credential {ref}"
    kg("incident", "contain", iid, "--resource", ref, "--json", code=2)  # irreversible: needs --yes off a terminal
    contained = json.loads(kg("incident", "contain", iid, "--yes", "--json").stdout)  # the incident knows its REF
    assert contained["contain"][0] == "passwords reset to a random one"
    with pytest.raises(redis.AuthenticationError):
        root.execute_command("AUTH", app, leaked)
    root.execute_command("AUTH", "default", "")  # back to the default user for the fixture's clean-up
    assessed = json.loads(kg("incident", "assess", "--resource", ref, "--json").stdout)
    assert assessed["grade"] in {"low", "medium", "high"}
    rotated = json.loads(kg("incident", "rotate", iid, "--json").stdout)
    again = json.loads(kg("incident", "rotate", iid, "--json").stdout)
    assert rotated["reused"] is False and again["reused"] is True  # one new password, never a second
    rolled = json.loads(kg("incident", "rollout", iid, "--target", str(consumer / "app.env"), "--json").stdout)
    assert rolled["delivered"] == [str(consumer / "app.env")]
    new_url = (consumer / "app.env").read_text().strip().split("=", 1)[1]
    assert leaked not in new_url
    fresh = redis.Redis.from_url(new_url)
    assert fresh.ping()
    switched = json.loads(kg("incident", "rollout", iid, "--json").stdout)  # the consumer is on the new password
    fresh.close()
    assert switched["switched"]["is_switched"] and "retired" in switched
    outside = tmp_path / "elsewhere.env"
    outside.write_text("x\n")
    kg("incident", "rollout", iid, "--target", str(outside), code=3)  # outside [rollout] roots
    show = json.loads(kg("incident", "show", iid, "--json").stdout)
    done = {t["id"]: t["status"] for p in show["phases"] for t in p["tasks"]}
    assert done["compromise-key"] == "done" and done["verify-dead"] == "done" and done["rotate-key"] == "done"
    assert done["rollout-consumers"] == "done"
    assert kg("audit", "verify").returncode == 0
    events = [json.loads(x) for x in kg("audit", "export", "--format", "jsonl").stdout.splitlines() if x]
    ops = [e["op"] for e in events if (e.get("reason") or "").startswith(ref + ":")]
    for op in ("connector.incident", "connector.contain", "connector.prove_dead", "connector.usage_since",
               "connector.rotate", "connector.deliver", "connector.consumers_switched", "connector.retire"):
        assert op in ops


def test_external_credential_becomes_manual_revoke_tasks(kg: Kg) -> None:
    ref = "external/github-pat/" + "ab" * 16
    done = json.loads(kg("respond", "--resource", ref, "--exposed-at", "-3h", "--yes", "--json").stdout)
    show = json.loads(kg("incident", "show", str(done["incident"]), "--json").stdout)
    manual = {t["id"]: t["title"]["en"] for p in show["phases"] for t in p["tasks"] if t["id"].startswith("manual-")}
    assert set(manual) == {"manual-contain", "manual-prove-dead", "manual-usage-since", "manual-rotate",
                           "manual-deliver", "manual-consumers-switched", "manual-retire"}
    assert "https://github.com/settings/tokens" in manual["manual-contain"]
    assert any(a.startswith("task manual-contain") for a in done["attention"])
    again = json.loads(kg("respond", "--resource", ref, "--yes", "--json").stdout)  # resumes, no second incident
    assert again["incident"] == done["incident"]
    events = [json.loads(x) for x in kg("audit", "export", "--format", "jsonl").stdout.splitlines() if x]
    assert {"connector.contain", "connector.retire"} <= {e["op"] for e in events if ref in (e.get("reason") or "")}
