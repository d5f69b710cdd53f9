"""An attacker with full database access: forged, laundered, truncated and rolled-back logs are caught.

The chain itself is unkeyed (SHA-256 over each event, SPEC §5), so anyone who can
write the database can recompute it; what they cannot do is sign the head
(HMAC under the sealed checkpoint key) or an exported checkpoint (Ed25519 from
the same key). Every test here reproduces the attack on both backends.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from keyguard.audit.chain import GENESIS, event_hash
from keyguard.audit.checkpoint import (
    load_checkpoints,
    public_key,
    signed_checkpoint,
    verify_against,
    write_checkpoint_file,
)
from keyguard.audit.push import CheckpointPusher, PushConfig, load_config
from keyguard.audit.reading import iter_events, verify_log
from keyguard.errors import AuditWriteError, ChainIntegrityError


def forge(engine: Engine, event_id: int, *, blank: bool = False) -> None:
    """Edit one event, recompute the chain after it with the chain's own hash, and update the head."""
    events = list(iter_events(engine))
    prev = GENESIS
    with engine.begin() as conn:
        for e in events:
            if e["id"] == event_id:
                e["actor"] = "mallory"
            e["prev_hash"] = prev
            e["hash"] = prev = event_hash(e)
            conn.execute(
                text("UPDATE audit_events SET actor=:a, prev_hash=:p, hash=:h WHERE id=:i"),
                {"a": e["actor"], "p": e["prev_hash"], "h": e["hash"], "i": e["id"]},
            )
        conn.execute(text("UPDATE audit_head SET last_hash=:h WHERE id=1"), {"h": prev})
        if blank:
            conn.execute(text("UPDATE audit_head SET \"checkpoint\"='' WHERE id=1"))


def head_row(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(text('SELECT last_id, last_hash, "checkpoint", counter FROM audit_head WHERE id=1')).one()
    return dict(row._mapping)


def restore(engine: Engine, backup: dict[str, Any]) -> None:
    """Put the database back to an older state: drop the newer events, replay the old head and checkpoint."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id > :i"), {"i": backup["last_id"]})
        conn.execute(
            text(
                'UPDATE audit_head SET last_id=:last_id, last_hash=:last_hash, "checkpoint"=:checkpoint, '
                "counter=:counter WHERE id=1"
            ),
            backup,
        )


def _busy(vault, admin, n: int = 3) -> None:  # type: ignore[no-untyped-def]
    vault.create_key(admin, "k", "encrypt")
    for _ in range(n):
        vault.encrypt(admin, "k", b"x")


# ---------------------------------------------------------------- 1. blank checkpoint


def test_blank_checkpoint_after_a_rewrite_is_an_integrity_failure(vault, admin) -> None:
    _busy(vault, admin)
    forge(vault.engine, 2, blank=True)
    verify_log(vault.engine)  # the unkeyed chain is consistent again …
    with pytest.raises(ChainIntegrityError, match="checkpoint is missing") as info:
        verify_log(vault.engine, vault.checkpoint_key)  # … but nobody signed its head
    assert info.value.event_id == 4


def test_an_empty_log_needs_no_checkpoint(vault) -> None:
    assert verify_log(vault.engine, vault.checkpoint_key)["events"] == 0


@pytest.fixture
def kg(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    env = {**os.environ, "KEYGUARD_HOME": str(tmp_path / "home"), "KEYGUARD_DATABASE_URL": db_url}
    env.pop("KEYGUARD_TOKEN", None)

    def run(*args: str, stdin: bytes = b"", code: int = 0) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(
            [sys.executable, "-m", "keyguard", *args], input=stdin, capture_output=True, env=env, timeout=120
        )
        assert proc.returncode == code, (args, proc.returncode, proc.stderr.decode())
        return proc

    run("init")
    return run


def test_cli_verify_exits_5_on_a_blanked_checkpoint(kg, db_url: str, tmp_path: Path) -> None:
    kg("key", "create", "pay")
    kg("encrypt", "--key", "pay", stdin=b"x")
    engine = create_engine(db_url)
    forge(engine, 1, blank=True)
    engine.dispose()
    err = kg("audit", "verify", code=5).stderr.decode()
    assert "checkpoint is missing" in err


# ---------------------------------------------------------------- 2. laundering


@pytest.mark.parametrize("blank", [False, True])
def test_next_write_does_not_launder_a_forged_head(vault, admin, blank: bool) -> None:
    _busy(vault, admin)
    forge(vault.engine, 2, blank=blank)
    with pytest.raises(AuditWriteError) as info:
        vault.encrypt(admin, "k", b"x")  # the writer refuses to extend (and re-sign) a head it did not sign
    assert "ChainIntegrityError" in info.value.hint
    with pytest.raises(ChainIntegrityError):
        verify_log(vault.engine, vault.checkpoint_key)


def test_state_change_refused_on_a_forged_head(vault, admin) -> None:
    _busy(vault, admin)
    forge(vault.engine, 2)
    with pytest.raises(AuditWriteError):
        vault.set_state(admin, "k", 1, "disabled")
    assert vault.key_info("k").versions[1].state == "active"


# ---------------------------------------------------------------- 2. rollback and truncation


def test_restored_database_verifies_clean_but_not_against_an_exported_checkpoint(
    vault_factory, admin, tmp_path: Path
) -> None:
    vault = vault_factory()
    _busy(vault, admin)
    backup = head_row(vault.engine)
    for _ in range(3):
        vault.encrypt(admin, "k", b"x")
    exported = tmp_path / "cp.json"
    write_checkpoint_file(exported, signed_checkpoint(vault.engine, vault.checkpoint_key, vault.clock.now()))
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    docs = load_checkpoints(exported)
    assert verify_against(vault.engine, vault.checkpoint_key, docs)["against_last_id"] == 7
    restore(vault.engine, backup)
    verify_log(vault.engine, vault.checkpoint_key)  # an older head the vault really signed: the chain alone can't tell
    with pytest.raises(ChainIntegrityError, match="rolled back or truncated"):
        verify_against(vault.engine, vault.checkpoint_key, docs)
    with pytest.raises(AuditWriteError) as refused:
        vault.encrypt(admin, "k", b"x")  # this process saw a newer head: it refuses to write on the old one
    assert "restored" in refused.value.hint
    # Another process knows nothing newer, writes past the exported id: the event there differs.
    other = vault_factory()
    for _ in range(4):
        other.encrypt(admin, "k", b"y")
    with pytest.raises(ChainIntegrityError, match="differs from the exported checkpoint"):
        verify_against(other.engine, other.checkpoint_key, docs)


def test_exported_checkpoint_cannot_be_edited(vault, admin, tmp_path: Path) -> None:
    _busy(vault, admin)
    doc = signed_checkpoint(vault.engine, vault.checkpoint_key, vault.clock.now())
    assert doc["public_key"] == public_key(vault.checkpoint_key)
    doc["counter"] = 1
    with pytest.raises(ChainIntegrityError, match="not signed"):
        verify_against(vault.engine, vault.checkpoint_key, [doc])


def test_no_checkpoint_of_a_forged_head(vault, admin) -> None:
    _busy(vault, admin)
    forge(vault.engine, 2)
    with pytest.raises(ChainIntegrityError):
        signed_checkpoint(vault.engine, vault.checkpoint_key, vault.clock.now())


def test_counter_grows_with_every_signed_head(vault, admin) -> None:
    _busy(vault, admin, n=2)
    first = head_row(vault.engine)["counter"]
    vault.encrypt(admin, "k", b"x")
    assert head_row(vault.engine)["counter"] > first > 0


def test_cli_checkpoint_and_verify_against(kg, db_url: str, tmp_path: Path) -> None:
    kg("key", "create", "pay")
    engine = create_engine(db_url)
    backup = head_row(engine)
    kg("encrypt", "--key", "pay", stdin=b"x")
    out = tmp_path / "checkpoint.json"
    kg("audit", "checkpoint", "--out", str(out))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text())["format"] == "keyguard-audit-checkpoint/1"
    result = json.loads(kg("audit", "verify", "--against", str(out), "--json").stdout)
    assert result["against_counter"] >= 1
    restore(engine, backup)
    engine.dispose()
    err = kg("audit", "verify", "--against", str(out), code=5).stderr.decode()
    assert "rolled back or truncated" in err


# ---------------------------------------------------------------- 2. periodic push


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return


def test_pusher_sends_signed_checkpoints_to_file_and_webhook(vault, admin, tmp_path: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink_file = tmp_path / "checkpoints.jsonl"
    toml = tmp_path / "keyguard.toml"
    toml.write_text(
        '[audit.checkpoints]\ninterval = "1m"\n'
        f'sinks = ["file://{sink_file}", "http://127.0.0.1:{server.server_port}/cp"]\n'
    )
    config = load_config(toml)
    assert config is not None and config.interval == 60.0
    try:
        pusher = CheckpointPusher(vault.engine, vault.checkpoint_key, config)
        _busy(vault, admin, n=1)
        assert pusher.tick() is True
        assert pusher.tick() is False  # the head did not move
        vault.encrypt(admin, "k", b"x")
        assert pusher.tick() is True
    finally:
        server.shutdown()
    assert stat.S_IMODE(sink_file.stat().st_mode) == 0o600
    docs = load_checkpoints(sink_file)
    assert len(docs) == 2 and docs[1]["counter"] > docs[0]["counter"]
    assert [json.loads(b) for b in _Receiver.bodies[-2:]] == docs
    verify_against(vault.engine, vault.checkpoint_key, docs)


def test_pusher_reports_failed_sinks(vault, admin, tmp_path: Path) -> None:
    _busy(vault, admin, n=1)
    config = PushConfig(sinks=(f"file://{tmp_path}/missing-dir/cp.jsonl",))
    assert CheckpointPusher(vault.engine, vault.checkpoint_key, config).tick() is False
