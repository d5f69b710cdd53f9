"""``keyguard incident …`` end to end through the console entry point (SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyguard.cli.main import main


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KEYGUARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KEYGUARD_DATABASE_URL", raising=False)

    def invoke(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    assert invoke("init")[0] == 0  # only init creates the database (issue 13, point 7)
    return invoke


def _open(run, *extra: str) -> dict:  # type: ignore[no-untyped-def]
    code, out, err = run(
        "incident",
        "open",
        "--key",
        "pay@1",
        "--exposed-at",
        "-3h",
        "--detected-at",
        "-10m",
        "--source",
        "github.com/acme/app",
        "-j",
        "eu",
        "--data-class",
        "pii",
        "--json",
        *extra,
    )
    assert code == 0, err
    return json.loads(out)


def test_open_show_list_timeline(run) -> None:  # type: ignore[no-untyped-def]
    doc = _open(run)
    assert doc["status"] == "open" and doc["keys"] == [{"name": "pay", "version": 1}]
    assert [p["name"] for p in doc["phases"]] == ["contain", "assess", "recover", "review"]
    assert {
        "id",
        "title",
        "keys",
        "exposed_at",
        "detected_at",
        "status",
        "severity",
        "phases",
        "obligations",
        "impact",
        "root_cause",
        "timeline",
    } <= set(doc)
    assert doc["obligations"][0]["regulation"] == "gdpr-art33"
    assert doc["obligations"][0]["status"] == "pending"
    # Ten minutes after detection the 5-minute containment task is already late: exit 1.
    code, out, _ = run("incident", "show", str(doc["id"]))
    assert code == 1 and "gdpr-art33" in out and "needs attention" in out
    code, out, _ = run("incident", "list", "--json")
    assert code == 0 and [i["id"] for i in json.loads(out)] == [doc["id"]]
    code, out, _ = run("incident", "timeline", str(doc["id"]), "--json")
    assert code == 0 and [e["kind"] for e in json.loads(out)] == ["detected", "opened"]


def test_show_exits_0_when_nothing_is_overdue(run) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("incident", "open", "--key", "web", "--exposed-at", "-1h", "--json")
    assert code == 0, err
    code, _, _ = run("incident", "show", str(json.loads(out)["id"]), "--lang", "zh")
    assert code == 0


def test_task_update_notified_close(run) -> None:  # type: ignore[no-untyped-def]
    inc = str(_open(run)["id"])
    assert run("incident", "task", inc, "inform-owner", "--note", "paged alice", "--by", "bob")[0] == 0
    code, out, _ = run("incident", "update", inc, "--flag", "high-risk", "--severity", "high", "--json")
    assert code == 0 and {o["regulation"] for o in json.loads(out)["obligations"]} == {
        "gdpr-art33",
        "gdpr-art34",
    }
    code, out, _ = run("incident", "notified", inc, "-r", "gdpr-art33", "--reference", "DPA-1", "--json")
    assert code == 0 and json.loads(out)["status"] == "done"
    code, _, err = run("incident", "close", inc)
    assert code == 2 and "not recovered" in err
    code, out, _ = run("incident", "close", inc, "--force", "--note", "drill", "--json")
    assert code == 0 and json.loads(out)["status"] == "closed"


def test_errors_are_one_line_with_exit_codes(run) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("incident", "show", "42")
    assert code == 4 and err.startswith("keyguard: error: no incident 42")
    code, _, err = run("incident", "open", "--key", "pay@x", "--exposed-at", "-1h")
    assert code == 2 and "invalid key reference" in err
    code, _, err = run("incident", "open", "--key", "pay", "--exposed-at", "yesterday")
    assert code == 2 and "invalid time" in err
    assert "Traceback" not in err


def test_notify_drafts_in_both_languages(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inc = str(_open(run)["id"])
    code, out, _ = run(
        "incident",
        "notify",
        inc,
        "--regulation",
        "gdpr-art33",
        "--lang",
        "en",
        "--contact",
        "dpo@acme.example",
    )
    assert code == 0 and "Likely consequences of the breach" in out and "dpo@acme.example" in out
    target = tmp_path / "notice.md"
    code, _, _ = run("incident", "notify", inc, "-r", "gdpr-art33", "--lang", "zh", "--out", str(target))
    assert code == 0 and "泄露可能造成的后果" in target.read_text(encoding="utf-8")
    code, _, err = run("incident", "notify", inc, "-r", "nope")
    assert code == 4 and "no regulation" in err


def test_report_markdown_and_html(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inc = str(_open(run)["id"])
    code, out, _ = run("incident", "report", inc, "--format", "md", "--lang", "zh")
    assert code == 0 and "## 对照 SLA 的时间线" in out
    target = tmp_path / "r.html"
    code, out, _ = run("incident", "report", inc, "--format", "html", "--out", str(target), "--json")
    assert code == 0 and json.loads(out)["bytes"] == target.stat().st_size
    assert "data:image/png;base64," in target.read_text(encoding="utf-8")
    code, _, err = run("incident", "report", inc, "--format", "pdf")
    assert code == 2 and "--out" in err


def test_immediately_is_not_overdue_at_detection(run) -> None:  # type: ignore[no-untyped-def]
    # One minute after detection nothing is late: China's "immediately" duties have a concrete due time.
    code, out, err = run(
        "incident",
        "open",
        "--key",
        "pay",
        "--exposed-at",
        "-1h",
        "--detected-at",
        "-1m",
        "-j",
        "cn",
        "--data-class",
        "pii",
        "--json",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["attention"] == []
    code, out, _ = run("incident", "show", str(doc["id"]), "--json")
    first = json.loads(out)["obligations"][0]
    assert code == 0 and first["status"] == "pending" and first["due_basis"]["en"].startswith("immediately")
