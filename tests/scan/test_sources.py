"""Files, directories (.gitignore), binaries, archives and stdin."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from keyguard.scan.engine import Scanner
from keyguard.scan.run import scan_targets
from keyguard.scan.sources.files import MAX_ARCHIVE_DEPTH, walk_dir
from keyguard.scan.sources.ignore import IgnoreMatcher

from .conftest import git


def _tree(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


def test_directory_honours_gitignore_without_git(tmp_path: Path, scanner: Scanner, gen: Callable[[str], str]) -> None:
    token = gen("t = {crc:ghp}\n")
    _tree(
        tmp_path,
        {
            ".gitignore": "build/\n*.log\n!keep.log\n",
            "src/app.py": token,
            "build/out.py": token,
            "debug.log": token,
            "keep.log": token,
            "sub/.gitignore": "secret.txt\n",
            "sub/secret.txt": token,
        },
    )
    found = sorted(Path(f.file).relative_to(tmp_path).as_posix() for f in scan_targets(scanner, [str(tmp_path)]))
    assert found == ["keep.log", "src/app.py"]
    everything = scan_targets(scanner, [str(tmp_path)], no_ignore=True)
    assert len(everything) == 5


def test_directory_inside_git_uses_git_view(repo: Path, scanner: Scanner, gen: Callable[[str], str]) -> None:
    token = gen("t = {crc:ghp}\n")
    _tree(repo, {".gitignore": "ignored/\n", "a.py": token, "ignored/b.py": token, "new.py": token})
    git(repo, "add", "a.py", ".gitignore")
    names = sorted(p.name for p in walk_dir(repo, no_ignore=False))
    assert names == [".gitignore", "a.py", "new.py"]
    assert len(scan_targets(scanner, [str(repo)])) == 2


def test_binary_skipped_by_content(tmp_path: Path, scanner: Scanner, gen: Callable[[str], str]) -> None:
    token = gen("{crc:ghp}")
    (tmp_path / "data.txt").write_bytes(b"\x00\x01" + token.encode())
    (tmp_path / "notes.bin").write_text(f"t={token}")
    found = [Path(f.file).name for f in scan_targets(scanner, [str(tmp_path)])]
    assert found == ["notes.bin"]


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def _targz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_nested_archives(tmp_path: Path, scanner: Scanner, gen: Callable[[str], str]) -> None:
    token = gen("key = {crc:ghp}\n").encode()
    wheel = _zip({"pkg/config.py": token, "pkg/img.png": b"\x89PNG\x00\x00"})
    bundle = _targz({"dist/pkg-1.0-py3-none-any.whl": wheel, "README": b"hello"})
    (tmp_path / "release.tgz").write_bytes(bundle)
    findings = scan_targets(scanner, [str(tmp_path / "release.tgz")])
    assert [f.file.split("/")[-1] for f in findings] == ["config.py"]
    assert findings[0].file.endswith("release.tgz!dist/pkg-1.0-py3-none-any.whl!pkg/config.py")


def test_archive_depth_limit(tmp_path: Path, scanner: Scanner, gen: Callable[[str], str]) -> None:
    data = gen("key = {crc:ghp}\n").encode()
    for level in range(MAX_ARCHIVE_DEPTH + 1):
        data = _zip({f"l{level}.zip" if level else "secret.txt": data})
    (tmp_path / "deep.zip").write_bytes(data)
    assert scan_targets(scanner, [str(tmp_path / "deep.zip")]) == []


def test_corrupt_archive_is_not_fatal(tmp_path: Path, scanner: Scanner) -> None:
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04garbage")
    assert scan_targets(scanner, [str(tmp_path)]) == []


def test_ignore_matcher_semantics(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("/root.txt\n**/gen/**\ndocs/*.md\n")
    matcher = IgnoreMatcher(tmp_path)
    matcher.load_dir("")
    assert matcher.ignored("root.txt", False)
    assert not matcher.ignored("a/root.txt", False)
    assert matcher.ignored("x/gen/y.py", False)
    assert matcher.ignored("docs/a.md", False)
    assert not matcher.ignored("docs/sub/a.md", False)


def test_parallel_tree_scan_matches_serial(
    tmp_path: Path, scanner: Scanner, gen: Callable[[str], str], monkeypatch: object
) -> None:
    import pytest

    from keyguard.scan import run

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    for index in range(12):
        (tmp_path / f"f{index}.py").write_text(gen("x = 1\nT = '{crc:ghp}'\n") * (index % 3))
    serial = scan_targets(scanner, [str(tmp_path)], jobs=1)
    monkeypatch.setattr(run, "PARALLEL_FILES_BYTES", 0)
    parallel = scan_targets(scanner, [str(tmp_path)], jobs=2)
    key = lambda f: (f.file, f.line, f.secret)  # noqa: E731
    assert sorted(map(key, serial)) == sorted(map(key, parallel)) and len(serial) == 12
