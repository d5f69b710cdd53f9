"""Reading git history while it is scanned: oldest commit first, every blob once, the
path of its first introduction, and one reusable cat-file reader per process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from keyguard.scan import run
from keyguard.scan.engine import Scanner
from keyguard.scan.run import scan_history
from keyguard.scan.sources import git as gitsrc

from .conftest import commit, git


@pytest.fixture
def tangled(repo: Path) -> dict[str, str]:
    """Edits, a deletion, a re-addition, a rename, one blob at two paths, and a merge."""
    (repo / "a.txt").write_text("one\n")
    (repo / "b.txt").write_text("bee\n")
    c1 = commit(repo, "start", "2024-01-01T00:00:00+00:00")
    (repo / "a.txt").write_text("two\n")
    (repo / "copy1.txt").write_text("same\n")
    (repo / "copy2.txt").write_text("same\n")
    c2 = commit(repo, "edit", "2024-01-02T00:00:00+00:00")
    git(repo, "checkout", "-q", "-b", "topic")
    (repo / "b.txt").rename(repo / "renamed.txt")
    (repo / "topic.txt").write_text("topic\n")
    c3 = commit(repo, "rename", "2024-01-03T00:00:00+00:00")
    git(repo, "checkout", "-q", "main")
    (repo / "a.txt").unlink()
    c4 = commit(repo, "delete", "2024-01-04T00:00:00+00:00")
    (repo / "again.txt").write_text("one\n")  # the blob of c1's a.txt, added again
    c5 = commit(repo, "re-add", "2024-01-05T00:00:00+00:00")
    git(repo, "merge", "-q", "--no-edit", "topic", env={"GIT_COMMITTER_DATE": "2024-01-06T00:00:00+00:00"})
    return {"c1": c1, "c2": c2, "c3": c3, "c4": c4, "c5": c5, "merge": git(repo, "rev-parse", "HEAD")}


def _all_blobs(repo: Path) -> set[str]:
    listed = git(repo, "rev-list", "--objects", "--all").splitlines()
    shas = [line.split()[0] for line in listed]
    return {sha for sha in shas if git(repo, "cat-file", "-t", sha) == "blob"}


def _hash(repo: Path, text: str) -> str:
    (repo.parent / "probe.txt").write_text(text)
    return git(repo, "hash-object", str(repo.parent / "probe.txt"))


def test_every_blob_once_oldest_commit_first(repo: Path, tangled: dict[str, str]) -> None:
    stream = gitsrc.HistoryStream(str(repo))
    yielded = [pair for fresh in stream for pair in fresh]
    history = stream.finish()
    blobs = [blob for blob, _ in yielded]
    assert len(blobs) == len(set(blobs))
    assert set(blobs) == _all_blobs(repo) == set(history.introductions)
    # commits newest first, as read_history has always given them; parents after children
    order = [c.sha for c in history.commits]
    for sha in order:
        for parent in git(repo, "rev-parse", f"{sha}^@").split():
            assert order.index(parent) > order.index(sha)
    # the first blobs come from the root commit: scanning starts with the oldest history
    first = {blob for blob, _ in yielded[:2]}
    assert first == {_hash(repo, "one\n"), _hash(repo, "bee\n")}


def test_path_is_that_of_the_first_introduction(repo: Path, tangled: dict[str, str]) -> None:
    stream = gitsrc.HistoryStream(str(repo))
    paths = dict(pair for fresh in stream for pair in fresh)
    history = stream.finish()
    assert paths[_hash(repo, "one\n")] == "a.txt"  # not again.txt (c5)
    assert paths[_hash(repo, "bee\n")] == "b.txt"  # not renamed.txt (c3)
    assert paths[_hash(repo, "same\n")] == "copy1.txt"  # two paths in one commit: git's first
    for blob, path in paths.items():
        assert gitsrc.origin_for(history, blob).path == path  # what attribution has always used
    index = {c.sha: i for i, c in enumerate(history.commits)}
    assert sorted(history.introductions[_hash(repo, "one\n")]) == [
        (index[tangled["c5"]], "again.txt"),
        (index[tangled["c1"]], "a.txt"),
    ]


def test_max_commits_selects_the_newest(repo: Path, tangled: dict[str, str]) -> None:
    stream = gitsrc.HistoryStream(str(repo), max_commits=2)
    list(stream)
    assert [c.sha for c in stream.finish().commits] == [tangled["merge"], tangled["c5"]]


def test_renamed_deleted_and_merged_secrets(
    repo: Path, scanner: Scanner, gen: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token, other = gen("{crc:ghp}"), gen("{crc:ghp}")
    (repo / "conf.py").write_text(f"T = '{token}'\n")
    c1 = commit(repo, "add", "2024-01-01T00:00:00+00:00")
    git(repo, "checkout", "-q", "-b", "topic")
    (repo / "conf.py").rename(repo / "settings.py")
    c2 = commit(repo, "rename", "2024-01-02T00:00:00+00:00")
    (repo / "settings.py").unlink()
    (repo / "side.py").write_text(f"O = '{other}'\n")
    c3 = commit(repo, "delete", "2024-01-03T00:00:00+00:00")
    git(repo, "checkout", "-q", "main")
    (repo / "main.txt").write_text("main\n")
    commit(repo, "main", "2024-01-04T00:00:00+00:00")
    git(repo, "merge", "-q", "--no-edit", "topic", env={"GIT_COMMITTER_DATE": "2024-01-05T00:00:00+00:00"})
    expected = [(token, "conf.py", c1), (token, "settings.py", c2), (other, "side.py", c3)]
    serial = scan_history(scanner, str(repo), jobs=1)
    assert sorted((f.secret, f.file, f.commit) for f in serial) == sorted(expected)
    monkeypatch.setattr(run, "BATCH", 0)
    monkeypatch.setattr(run, "TASK_BLOBS", 1)  # one blob per worker task
    parallel = scan_history(scanner, str(repo), jobs=2)
    assert sorted((f.secret, f.file, f.commit) for f in parallel) == sorted(expected)


def test_one_cat_file_serves_many_batches(repo: Path, tangled: dict[str, str]) -> None:
    ids = [_hash(repo, text) for text in ("one\n", "two\n", "bee\n", "same\n")]
    reader = gitsrc.CatFile(str(repo))
    try:
        first = [(sha, data) for sha, _, data in reader.blobs(ids[:2])]
        assert first == [(ids[0], b"one\n"), (ids[1], b"two\n")]
        abandoned = reader.blobs(ids)
        next(abandoned)
        abandoned.close()  # answers left in the pipe: the next call must not read them
        again = [(sha, data) for sha, _, data in reader.blobs([ids[3], "0" * 40, ids[2]])]
        assert again == [(ids[3], b"same\n"), (ids[2], b"bee\n")]
    finally:
        reader.close()


def test_many_ids_do_not_fill_the_pipes(repo: Path, tangled: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gitsrc, "IN_FLIGHT", 4)
    ids = sorted(_all_blobs(repo)) * 50
    reader = gitsrc.CatFile(str(repo))
    try:
        assert [sha for sha, _, _ in reader.blobs(ids)] == ids
    finally:
        reader.close()
