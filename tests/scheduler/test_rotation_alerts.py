"""A failed scheduled rotation reaches the sinks of keyguard.toml, once per alert (not per retry)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from keyguard.config import Settings
from keyguard.errors import KeyguardError
from keyguard.monitor.delivery import Dispatcher
from keyguard.monitor.sinks import parse_sink
from keyguard.response.scheduler.rotation import ALERT_RULE, ScheduledRotations
from keyguard.response.scheduler.service import build_scheduler
from tests.monitor.receivers import http_receiver

from .test_rotation import make_due


def _break_rotation(vault, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyguardError("the HSM is unreachable")

    monkeypatch.setattr(vault, "rotate", broken)


def test_a_failed_rotation_is_delivered_to_a_sink_once(vault, admin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    vault.create_key(admin, "k", "encrypt")
    make_due(vault, "k")
    _break_rotation(vault, monkeypatch)
    with http_receiver() as receiver:
        dispatcher = Dispatcher(vault.engine, [parse_sink(receiver.url + "/hook")], backoff=0)
        scheduler = ScheduledRotations(vault, retry_after=timedelta(0), dispatcher=dispatcher)
        try:
            scheduler.run()
            scheduler.run()  # the same failure again: the open alert counts it, nothing new is sent
            assert dispatcher.flush(10)
        finally:
            dispatcher.close()
    assert len(receiver.requests) == 1
    body = json.loads(receiver.requests[0][2])
    alert = body.get("alert", body)
    assert (alert["rule"], alert["key"], alert["severity"]) == (ALERT_RULE, "k", "high")


def test_serve_s_scheduler_alerts_the_sinks_of_keyguard_toml(vault, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    home.mkdir()
    (home / "keyguard.toml").write_text('[monitor]\nsinks = ["http://127.0.0.1:9/alerts"]\n', encoding="utf-8")
    scheduler = build_scheduler(Settings(home=home, database_url=str(vault.engine.url)), vault)
    try:
        assert scheduler.dispatcher is not None
        [name] = scheduler.dispatcher.sink_names
        assert name.startswith("http://127.0.0.1:9/")  # the path is redacted in names
        assert scheduler.rotations is not None and scheduler.rotations.dispatcher is scheduler.dispatcher
    finally:
        scheduler.stop()
    bare = tmp_path / "bare"
    bare.mkdir()
    quiet = build_scheduler(Settings(home=bare, database_url=str(vault.engine.url)), vault)
    try:
        assert quiet.dispatcher is None
    finally:
        quiet.stop()
