"""``--target secret:NAME``: a rotated credential delivered as a new version of a keyguard secret.

On the local Redis: a consumer that reads its password from a keyguard secret at start-up
(``keyguard run --secret``) gets the new one on restart, without any file being rewritten.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import redis

from keyguard.connectors.base import Rotation
from keyguard.connectors.deliver import secret_value
from keyguard.connectors.refs import parse_ref
from keyguard.connectors.secret import Secret
from keyguard.errors import UsageError

from .conftest import Kg

URL = "redis://127.0.0.1:6379/0"


@pytest.mark.slow
def test_respond_delivers_the_new_redis_password_to_a_keyguard_secret(
        kg: Kg, users: Callable[..., tuple[str, str]], root: redis.Redis) -> None:
    admin = users("~*", "&*", "+@all")
    app, leaked = users("~app:*", "+get", "+ping")
    kg("connector", "add", "cache", "--type", "redis", "--set", f"url={URL}", "--set", f"username={admin[0]}",
       "--secret-stdin", "password", stdin=admin[1])
    kg("secret", "put", "cache-pass", stdin=leaked)  # where the consumer reads its password today
    probe = [sys.executable, "-c", "import os; print(os.environ['CACHE_PASSWORD'])"]
    assert kg("run", "--secret", "CACHE_PASSWORD=cache-pass", "--", *probe).stdout.strip() == leaked
    ref = f"cache/user/{app}"
    done = kg("respond", "--resource", ref, "--target", "secret:cache-pass", "--exposed-at", "-1h", "--yes",
              "--json")
    new = kg("secret", "get", "cache-pass").stdout.strip()
    assert new and new != leaked
    assert new not in done.stdout + done.stderr  # named by version, never shown
    rollout = next(s for s in json.loads(done.stdout)["steps"] if s["step"] == "rollout")
    assert rollout["delivered_secrets"] == ["secret:cache-pass@2"]
    fresh = redis.Redis(host="127.0.0.1", port=6379, username=app, password=new)
    assert fresh.ping()
    fresh.close()
    with pytest.raises(redis.AuthenticationError):
        root.execute_command("AUTH", app, leaked)
    root.execute_command("AUTH", "default", "")
    # the consumer restarted with keyguard run has the new password; a rerun writes no third version
    assert kg("run", "--secret", "CACHE_PASSWORD=cache-pass", "--", *probe).stdout.strip() == new
    again = json.loads(kg("incident", "rollout", "--resource", ref, "--target", "secret:cache-pass",
                          "--json").stdout)
    assert again["delivered_secrets"] == []
    listed = json.loads(kg("secret", "list", "--json").stdout)
    assert next(s for s in listed if s["name"] == "cache-pass")["latest_version"] == 2
    kg("incident", "rollout", "--resource", ref, "--target", "secret:Bad Name", code=2)
    audit = kg("audit", "export", "--format", "jsonl").stdout
    events = [json.loads(x) for x in audit.splitlines() if x]
    assert any(e["op"] == "secret.rotate" and e["key"] == "secret:cache-pass" and e["version"] == 2 for e in events)
    assert any(e["op"] == "connector.deliver" and "wrote secret:cache-pass version 2" in (e["reason"] or "")
               for e in events)
    assert new not in audit and leaked not in audit
    assert kg("audit", "verify").returncode == 0


def _rotation(old_id: str, new_id: str, new: str | None) -> Rotation:
    ref = parse_ref(f"aws/access-key/{old_id}")
    return Rotation(ref, parse_ref(f"aws/access-key/{new_id}"), datetime.now(UTC),
                    Secret(new) if new is not None else None)


def test_secret_value_replaces_like_a_file_and_is_idempotent() -> None:
    pair = _rotation("AKIAOLD0000000000000", "AKIANEW0000000000000", "new-secret-key")
    old = Secret("old-secret-key")
    assert secret_value(pair, old, None) == "new-secret-key"  # a new secret: the credential itself
    both = "AKIAOLD0000000000000:old-secret-key"
    assert secret_value(pair, old, both) == "AKIANEW0000000000000:new-secret-key"
    assert secret_value(pair, old, "AKIAOLD0000000000000") == "AKIANEW0000000000000"
    assert secret_value(pair, None, "unrelated") == "new-secret-key"  # holds neither: replaced whole
    for delivered in ("AKIANEW0000000000000:new-secret-key", "AKIANEW0000000000000", "new-secret-key"):
        assert secret_value(pair, old, delivered) is None
    with pytest.raises(UsageError):
        secret_value(_rotation("AKIAOLD0000000000000", "AKIAOLD0000000000000", None), None, "x")
