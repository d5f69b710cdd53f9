"""Importing into the store on SQLite and PostgreSQL: de-duplication, export, alerts, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from keyguard.cli.main import main
from keyguard.errors import DataFileError
from keyguard.monitor.ingest import import_target
from keyguard.monitor.segments import count_events
from keyguard.monitor.store import iter_imported
from keyguard.store.monitor_tables import Alert


def _events_file(path: Path, n: int, *, bad_every: int = 0) -> Path:
    lines = []
    for i in range(n):
        if bad_every and i % bad_every == bad_every - 1:
            lines.append("{oops")
            continue
        lines.append(
            json.dumps(
                {
                    "ts": f"2026-01-05T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
                    "op": "decrypt",
                    "result": "denied" if i >= n - 12 else "ok",
                    "reason": "permission denied" if i >= n - 12 else None,
                    "key": "pay",
                    "version": 1,
                    "actor": "svc",
                    "source_ip": "10.0.0.1",
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def _count(engine: Engine, table: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_reimport_adds_nothing_and_bad_lines_are_counted(engine: Engine, tmp_path: Path) -> None:
    path = _events_file(tmp_path / "e.jsonl", 100, bad_every=25)
    first = import_target(engine, str(path), "jsonl")
    assert first.to_json() == {"read": 100, "imported": 96, "duplicates": 0, "rejected": 4}
    assert [r.source_line for r in first.rejections] == [25, 50, 75, 100]
    second = import_target(engine, str(path), "jsonl")
    assert second.to_json() == {"read": 100, "imported": 0, "duplicates": 96, "rejected": 4}
    assert count_events(engine) == 96


def test_detection_on_import_and_no_realert_on_reimport(engine: Engine, tmp_path: Path) -> None:
    path = _events_file(tmp_path / "e.jsonl", 60)
    stats = import_target(engine, str(path), "jsonl")
    assert stats.alerts == 1
    with Session(engine) as session:
        alert = session.execute(select(Alert)).scalars().one()
    assert alert.rule == "denied-burst" and alert.status == "open" and alert.count == 1
    import_target(engine, str(path), "jsonl")
    assert _count(engine, Alert) == 1


def test_export_shape(engine: Engine, tmp_path: Path) -> None:
    import_target(engine, str(_events_file(tmp_path / "e.jsonl", 3)), "jsonl", detect=False)
    records = list(iter_imported(engine))
    assert len(records) == 3
    assert {
        "ts",
        "actor",
        "source_ip",
        "user_agent",
        "op",
        "key",
        "version",
        "result",
        "reason",
        "request_id",
        "source",
        "source_line",
    } <= set(records[0])
    assert records[0]["source"] == "jsonl" and records[0]["source_line"] == 1


@pytest.mark.slow
def test_cli_import_and_export(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KEYGUARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KEYGUARD_DATABASE_URL", db_url)
    path = _events_file(tmp_path / "e.jsonl", 30, bad_every=10)
    assert main(["audit", "import", "--format", "jsonl", str(path), "--json"]) == 4  # no database yet
    assert "keyguard init" in capsys.readouterr().err
    assert main(["init"]) == 0  # only init creates the database
    capsys.readouterr()
    assert main(["audit", "import", "--format", "jsonl", str(path), "--json"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out) == {"read": 30, "imported": 27, "duplicates": 0, "rejected": 3}
    assert "10: invalid JSON" in err
    assert main(["audit", "import", "--format", "jsonl", str(path), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["duplicates"] == 27
    target = tmp_path / "out.jsonl"
    assert main(["audit", "export", "--imported", "--format", "jsonl", "--out", str(target)]) == 0
    lines = [json.loads(x) for x in target.read_text().splitlines()]
    assert len(lines) == 27 and lines[0]["source"] == "jsonl" and lines[0]["source_line"] == 1
    assert main(["audit", "import", "--format", "nope", str(path)]) == 2


def test_grown_file_imports_only_the_new_lines(engine: Engine, tmp_path: Path) -> None:
    full = _events_file(tmp_path / "full.jsonl", 80)
    head = tmp_path / "head.jsonl"
    head.write_text("".join(full.read_text().splitlines(keepends=True)[:50]))
    assert import_target(engine, str(head), "jsonl", detect=False).imported == 50
    stats = import_target(engine, str(full), "jsonl", detect=False)
    assert (stats.imported, stats.duplicates) == (30, 50)
    assert count_events(engine) == 80


def test_custom_rules_replace_the_catalog(engine: Engine, tmp_path: Path) -> None:
    source = Path(__file__).parents[2] / "src/keyguard/monitor/rules/denied-burst.yaml"
    rules = tmp_path / "rules"
    rules.mkdir()
    text = source.read_text().replace("threshold: 10,", "threshold: 11,")
    (rules / "burst.yaml").write_text(text)
    path = _events_file(tmp_path / "e.jsonl", 60)  # 12 refusals within a minute
    assert import_target(engine, str(path), "jsonl", rules=[rules]).alerts == 1
    (rules / "burst.yaml").write_text(text.replace("threshold: 11,", "threshold: 30,"))
    with pytest.raises(DataFileError, match="fails its examples"):
        import_target(engine, str(path), "jsonl", rules=[rules])


def test_credential_fingerprint_key_comes_from_the_vault(vault) -> None:  # type: ignore[no-untyped-def]
    """With a vault the key is derived from its sealed secrets and nothing is stored in clear."""
    from keyguard.monitor.store import fingerprint_key, get_state

    key = fingerprint_key(vault.engine)
    assert key == vault.derived_key("monitor-credential-fingerprint") and len(key) == 32
    assert get_state(vault.engine, "fingerprint_key") is None
