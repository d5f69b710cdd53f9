"""Git history: every ref, deleted content, first-commit attribution, filters, staged."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from keyguard.errors import UsageError
from keyguard.scan import run
from keyguard.scan.engine import Scanner
from keyguard.scan.run import scan_history, scan_staged

from .conftest import GIT_ENV, commit, git


@pytest.fixture
def history(repo: Path, gen: Callable[[str], str]) -> dict[str, str]:
    t = gen("{crc:ghp}")
    u = gen("AKIA{gen:[A-Z2-7]*16}")
    (repo / "README.md").write_text("hello\n")
    (repo / "config.py").write_text(f"DEBUG = True\nTOKEN = '{t}'\n")
    c1 = commit(repo, "add config", "2024-01-02T10:00:00+00:00", "Bob Builder")
    (repo / "config.py").write_text(f"DEBUG = False\nX = 1\nTOKEN = '{t}'\n")
    c2 = commit(repo, "tweak", "2024-02-01T10:00:00+00:00")
    (repo / "config.py").unlink()
    c3 = commit(repo, "remove secret", "2024-03-01T10:00:00+00:00")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "deploy.sh").write_text(f"export AWS_ACCESS_KEY_ID={u}\n")
    c4 = commit(repo, "deploy", "2024-04-01T10:00:00+00:00", "Carol Danvers")
    git(repo, "checkout", "-q", "main")
    return {"t": t, "u": u, "c1": c1, "c2": c2, "c3": c3, "c4": c4}


def test_full_history_first_commit(repo: Path, scanner: Scanner, history: dict[str, str]) -> None:
    findings = scan_history(scanner, str(repo), jobs=1)
    by_secret = {f.secret: f for f in findings}
    assert set(by_secret) == {history["t"], history["u"]}
    t = by_secret[history["t"]]
    assert (t.commit, t.author, t.email, t.file, t.line) == (
        history["c1"],
        "Bob Builder",
        "bob@corp.test",
        "config.py",
        2,
    )
    assert t.date is not None and t.date.startswith("2024-01-02")
    u = by_secret[history["u"]]
    assert (u.commit, u.author, u.rule) == (history["c4"], "Carol Danvers", "aws-access-key-id")


def test_branch_since_max_commits(repo: Path, scanner: Scanner, history: dict[str, str]) -> None:
    main_only = scan_history(scanner, str(repo), branch="main", jobs=1)
    assert [f.secret for f in main_only] == [history["t"]]
    recent = scan_history(scanner, str(repo), since="2024-03-15T00:00:00+00:00", jobs=1)
    assert [f.secret for f in recent] == [history["u"]]
    last = scan_history(scanner, str(repo), branch="feature", max_commits=1, jobs=1)
    assert [f.secret for f in last] == [history["u"]]
    # the tweak commit alone re-adds the blob: attributed to it when earlier ones are excluded
    window = scan_history(scanner, str(repo), branch="main", since="2024-01-15T00:00:00+00:00", jobs=1)
    assert [(f.secret, f.commit) for f in window] == [(history["t"], history["c2"])]


def test_parallel_workers_same_result(
    repo: Path, scanner: Scanner, history: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run, "BATCH", 1)
    monkeypatch.setattr(run, "TASK_BLOBS", 1)
    serial = scan_history(scanner, str(repo), jobs=1)
    parallel = scan_history(scanner, str(repo), jobs=2)
    key = lambda f: (f.secret, f.commit, f.file, f.line)  # noqa: E731
    assert sorted(map(key, serial)) == sorted(map(key, parallel))


def test_not_a_repository(tmp_path: Path, scanner: Scanner) -> None:
    with pytest.raises(UsageError, match="not a git repository"):
        scan_history(scanner, str(tmp_path))


def test_bad_branch_is_usage_error(repo: Path, scanner: Scanner, history: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="git log failed"):
        scan_history(scanner, str(repo), branch="nope")


def test_staged_reports_only_added_lines(repo: Path, scanner: Scanner, gen: Callable[[str], str]) -> None:
    old = gen("{crc:ghp}")
    (repo / "app.py").write_text(f"TOKEN = '{old}'\n")
    commit(repo, "old", "2024-01-01T00:00:00+00:00")
    assert scan_staged(scanner, str(repo)) == []
    new = gen("{crc:ghp}")
    (repo / "app.py").write_text(f"TOKEN = '{old}'\nOTHER = '{new}'\n")
    (repo / "unstaged.py").write_text(f"X = '{gen('{crc:ghp}')}'\n")
    git(repo, "add", "app.py")
    found = scan_staged(scanner, str(repo))
    assert [(f.file, f.line, f.secret) for f in found] == [("app.py", 2, new)]


def test_large_blobs_are_streamed(
    repo: Path, scanner: Scanner, gen: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = gen("{crc:ghp}")
    (repo / "big.txt").write_text("filler line\n" * 2000 + f"T = '{token}'\n" + "tail\n" * 10)
    sha = commit(repo, "big", "2024-01-01T00:00:00+00:00")
    monkeypatch.setattr(run, "BLOB_IN_MEMORY", 1000)
    findings = scan_history(scanner, str(repo), jobs=1)
    assert [(f.secret, f.line, f.commit) for f in findings] == [(token, 2001, sha)]


def test_secret_added_only_in_a_merge_resolution(repo: Path, scanner: Scanner, gen: Callable[[str], str]) -> None:
    (repo / "conf.py").write_text("A = 1\n")
    commit(repo, "base", "2024-01-01T00:00:00+00:00")
    git(repo, "checkout", "-q", "-b", "topic")
    (repo / "conf.py").write_text("A = 2\n")
    commit(repo, "topic", "2024-01-02T00:00:00+00:00")
    git(repo, "checkout", "-q", "main")
    (repo / "conf.py").write_text("A = 3\n")
    commit(repo, "main", "2024-01-03T00:00:00+00:00")
    token = gen("{crc:ghp}")
    env = {"GIT_AUTHOR_DATE": "2024-01-04T00:00:00+00:00", "GIT_COMMITTER_DATE": "2024-01-04T00:00:00+00:00"}
    subprocess.run(
        ["git", "-C", str(repo), "merge", "-q", "topic"],
        capture_output=True,
        env={**os.environ, **GIT_ENV},
        check=False,
    )
    (repo / "conf.py").write_text(f"A = 4\nT = '{token}'\n")
    git(repo, "add", "conf.py")
    git(repo, "commit", "-q", "--no-edit", env=env)
    merge = git(repo, "rev-parse", "HEAD")
    findings = scan_history(scanner, str(repo), jobs=1)
    assert [(f.secret, f.commit) for f in findings] == [(token, merge)]


def test_large_archive_blobs_are_streamed_and_opened(
    repo: Path, scanner: Scanner, gen: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blob over the in-memory limit arrives as a pipe reader (no seek): zip and gzip
    blobs are still opened, the zip in memory up to its bound."""
    import gzip
    import io
    import zipfile

    first, second = gen("{crc:ghp}"), gen("{crc:ghp}")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("conf/app.env", f"TOKEN={first}\n" + "x = 1\n" * 500)
    (repo / "dist.zip").write_bytes(buf.getvalue())
    (repo / "dump.sql.gz").write_bytes(gzip.compress(b"-- dump\n" * 300 + f"t = '{second}'\n".encode()))
    sha = commit(repo, "archives", "2024-01-01T00:00:00+00:00")
    monkeypatch.setattr(run, "BLOB_IN_MEMORY", 100)
    findings = scan_history(scanner, str(repo), jobs=1)
    assert sorted((f.file, f.secret, f.commit) for f in findings) == sorted(
        [("dist.zip!conf/app.env", first, sha), ("dump.sql.gz!", second, sha)]
    )
