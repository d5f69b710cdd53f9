"""Files, directories, archives and stdin as scan items ``(Origin, bytes | stream)``."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from keyguard.scan.model import Origin
from keyguard.scan.sources.ignore import IgnoreMatcher

SNIFF = 8000
IN_MEMORY_LIMIT = 16 * 1024 * 1024
MAX_ARCHIVE_DEPTH = 3
MAX_MEMBER_SIZE = 64 * 1024 * 1024
SKIP_DIRS = frozenset({".git", ".hg", ".svn"})


@dataclass(slots=True)
class Item:
    """One unit of content: small ones carry ``data``, large ones a ``stream``."""

    origin: Origin
    data: bytes | None = None
    stream: IO[bytes] | None = None
    size: int = 0


def is_binary(head: bytes) -> bool:
    """Git's heuristic: a NUL byte in the first 8000 bytes."""
    return b"\0" in head[:SNIFF]


def archive_kind(head: bytes) -> str | None:
    """``zip`` / ``tar`` / ``gzip`` / ``bz2`` / ``xz`` from magic bytes, else None."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "tar"
    return None


def _archive_members(data: bytes, kind: str, prefix: str) -> Iterator[tuple[str, bytes]]:
    if kind == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                if not info.is_dir() and info.file_size <= MAX_MEMBER_SIZE:
                    yield f"{prefix}!{info.filename}", archive.read(info)
        return
    mode = {"gzip": "r:gz", "bz2": "r:bz2", "xz": "r:xz", "tar": "r:"}[kind]
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode=mode) as archive:  # type: ignore[call-overload]
            for member in archive:
                if member.isfile() and member.size <= MAX_MEMBER_SIZE:
                    handle = archive.extractfile(member)
                    if handle is not None:
                        yield f"{prefix}!{member.name}", handle.read()
    except tarfile.ReadError:
        if kind == "gzip":  # a plain .gz of one file
            import gzip

            yield f"{prefix}!", gzip.decompress(data)[:MAX_MEMBER_SIZE]


def expand_content(origin: Origin, data: bytes, depth: int = 0) -> Iterator[Item]:
    """Yield text items for ``data``: archives opened (to a depth), binaries dropped."""
    kind = archive_kind(data[:SNIFF])
    if kind is not None:
        if depth >= MAX_ARCHIVE_DEPTH:
            return
        try:
            for name, member in _archive_members(data, kind, origin.path):
                yield from expand_content(Origin(name, *_meta(origin)), member, depth + 1)
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, ValueError):
            return
        return
    if is_binary(data):
        return
    yield Item(origin, data=data, size=len(data))


def _meta(origin: Origin) -> tuple[str | None, str | None, str | None, str | None]:
    return origin.commit, origin.author, origin.email, origin.date


def read_file(path: Path, display: str) -> Iterator[Item]:
    """Items of one file on disk; files above the in-memory limit are streamed."""
    try:
        size = path.stat().st_size
        handle = path.open("rb")
    except OSError:
        return
    origin = Origin(display)
    with handle:
        head = handle.read(SNIFF)
        if size > IN_MEMORY_LIMIT and archive_kind(head) is None:
            if is_binary(head):
                return
            handle.seek(0)
            yield Item(origin, stream=handle, size=size)
            return
        data = head + handle.read()
    yield from expand_content(origin, data)


def read_stdin() -> Iterator[Item]:
    """Standard input as one item named ``-`` (streamed)."""
    yield Item(Origin("-"), stream=sys.stdin.buffer, size=0)


def _git_listing(folder: Path) -> list[str] | None:
    try:
        out = subprocess.run(  # noqa: S603 - fixed argv
            ["git", "-C", str(folder), "ls-files", "-co", "--exclude-standard", "-z"],  # noqa: S607
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [name for name in out.decode("utf-8", "surrogateescape").split("\0") if name]


def walk_dir(folder: Path, *, no_ignore: bool) -> Iterator[Path]:
    """Files under ``folder``: git's view (tracked + untracked, not ignored) when it is a
    work tree, else a walk honouring .gitignore files; everything with ``no_ignore``."""
    if not no_ignore:
        listing = _git_listing(folder)
        if listing is not None:
            for name in sorted(listing):
                candidate = folder / name
                if candidate.is_file() and not candidate.is_symlink():
                    yield candidate
            return
    matcher = IgnoreMatcher(folder)
    for root, dirs, files in os.walk(folder):
        rel_root = Path(root).relative_to(folder).as_posix()
        rel_root = "" if rel_root == "." else rel_root
        if not no_ignore:
            matcher.load_dir(rel_root)
        kept = []
        for name in sorted(dirs):
            rel = f"{rel_root}/{name}" if rel_root else name
            if name in SKIP_DIRS or (not no_ignore and matcher.ignored(rel, True)):
                continue
            kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            rel = f"{rel_root}/{name}" if rel_root else name
            path = Path(root) / name
            if path.is_symlink() or (not no_ignore and matcher.ignored(rel, False)):
                continue
            yield path


def iter_items(targets: list[str], *, no_ignore: bool = False) -> Iterator[Item]:
    """Scan items for command-line targets: ``-`` (stdin), files and directories."""
    for target in targets:
        if target == "-":
            yield from read_stdin()
            continue
        path = Path(target)
        if path.is_dir():
            for file in walk_dir(path, no_ignore=no_ignore):
                yield from read_file(file, file.as_posix())
        else:
            yield from read_file(path, path.as_posix())
