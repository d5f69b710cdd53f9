"""SPEC §4 exit 1 ("done, and something needs attention") where the monitor found something."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.monitor.receivers import http_receiver

from keyguard.cli.main import main


@pytest.fixture
def home(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    monkeypatch.setenv("KEYGUARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KEYGUARD_DATABASE_URL", db_url)
    monkeypatch.delenv("KEYGUARD_TOKEN", raising=False)
    assert main(["init"]) == 0
    capsys.readouterr()
    return db_url


def _denied_burst(tmp_path: Path, n: int = 12) -> Path:
    """A JSON-lines log (SPEC §5 shape) with a burst of refused calls: the denied-burst rule fires."""
    path = tmp_path / "events.jsonl"
    lines = [
        {
            "ts": f"2026-01-05T10:00:{i:02d}Z",
            "actor": "svc",
            "source_ip": "10.0.0.1",
            "user_agent": "app/1",
            "op": "decrypt",
            "key": "pay",
            "version": 1,
            "result": "denied",
            "reason": "permission denied",
            "request_id": f"r{i}",
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_import_that_raised_alerts_exits_1(home: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _denied_burst(tmp_path)
    assert main(["audit", "import", "--format", "jsonl", str(log), "--json"]) == 1
    stats = json.loads(capsys.readouterr().out)
    assert stats["rejected"] == 0 and stats["imported"] == 12
    assert main(["alert", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert main(["audit", "import", "--format", "jsonl", str(log), "--json"]) == 0  # nothing new


def test_watch_once_with_failed_deliveries_exits_1_and_redeliver_retries(
    home: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.monitor.test_watch import append_audit

    from keyguard.store.db import create_db_engine

    engine = create_db_engine(home)
    append_audit(engine, 1000, 12)
    engine.dispose()
    with http_receiver(statuses=[500] * 4) as rx:  # every try of the first delivery fails
        assert main(["watch", "--once", "--json", "--sink", rx.url]) == 1
        out, err = capsys.readouterr()
        assert json.loads(out)["undelivered"] == 1
        assert "alert redeliver" in err
        assert len(rx.requests) == 4
        # nothing new, but the failed delivery still needs attention
        assert main(["watch", "--once", "--json", "--sink", rx.url]) == 1
        capsys.readouterr()
        assert main(["alert", "redeliver", "--json", "--sink", rx.url]) == 0
        assert json.loads(capsys.readouterr().out) == {"retried": 1, "delivered": 1, "undelivered": 0}
        assert len(rx.requests) == 5
        capsys.readouterr()
        assert main(["watch", "--once", "--json", "--sink", rx.url]) == 0
        assert json.loads(capsys.readouterr().out) == {"events": 0, "alerts": 0}
        assert main(["alert", "redeliver", "--json", "--sink", rx.url]) == 0
        assert json.loads(capsys.readouterr().out) == {"retried": 0, "delivered": 0, "undelivered": 0}


def test_redeliver_needs_a_sink(home: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alert", "redeliver"]) == 2
    assert "no alert destination" in capsys.readouterr().err
