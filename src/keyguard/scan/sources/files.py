"""Files, directories, archives and stdin as scan items ``(Origin, bytes | stream)``."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from keyguard.scan.config import ExpandLimits
from keyguard.scan.model import Origin

SNIFF = 8000
IN_MEMORY_LIMIT = 1024 * 1024  # larger files are streamed in overlapping chunks
MAX_ARCHIVE_DEPTH = 3
NESTED_ZIP_LIMIT = 16 * 1024 * 1024  # a zip inside an archive is opened in memory up to this
READ = 256 * 1024
SKIP_DIRS = frozenset({".git", ".hg", ".svn"})


def _archive_errors() -> tuple[type[BaseException], ...]:
    """What a damaged archive or compressed stream raises. Evaluated by ``except`` clauses
    only when something was raised: tarfile and zipfile are imported when an archive is met
    (a history scan's start-up, and most of its blobs, never need them)."""
    import tarfile
    import zipfile

    return (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        tarfile.TarError,
        OSError,
        EOFError,
        ValueError,
        zlib.error,
        NotImplementedError,  # a zip member's compression method
        RuntimeError,  # an encrypted zip member
    )


@dataclass(slots=True)
class Item:
    """One unit of content: small ones carry ``data``, large ones a ``stream``."""

    origin: Origin
    data: bytes | None = None
    stream: Readable | None = None
    size: int = 0


class Readable(Protocol):
    """Anything with ``read(n) -> bytes``."""

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes; ``b""`` at the end."""
        ...


def warn(message: str) -> None:
    """A one-line note on stderr (a scan goes on after it)."""
    sys.stderr.write(f"keyguard: warning: {message}\n")


class _Budget:
    """Expanded and compressed byte counts of one top-level input, against its limits."""

    def __init__(self, origin: Origin, limits: ExpandLimits) -> None:
        self.origin = origin
        self.limits = limits
        self.compressed = 0
        self.expanded = 0
        self.tripped = False

    def spend(self, count: int) -> bool:
        """Count ``count`` expanded bytes; False (and one warning) once over a limit."""
        self.expanded += count
        limits = self.limits
        if self.tripped:
            return False
        if self.expanded > limits.max_expanded_bytes:
            reason = f"more than {limits.max_expanded_bytes} expanded bytes"
        elif self.expanded > limits.ratio_floor and self.expanded > limits.max_expansion_ratio * max(
            self.compressed, 1
        ):
            reason = f"expansion ratio over {limits.max_expansion_ratio:g}"
        else:
            return True
        self.tripped = True
        warn(f"{self.origin.path}: compressed content truncated ({reason}); the rest is not scanned")
        return False


class _Counted:
    """The raw (compressed) input: counts the bytes read from it."""

    def __init__(self, raw: IO[bytes], budget: _Budget) -> None:
        self._raw = raw
        self._budget = budget

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes of the input."""
        data = self._raw.read(n)
        self._budget.compressed += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        """Seek the input (zip reads its directory at the end)."""
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        """The input's position."""
        return self._raw.tell()

    def seekable(self) -> bool:
        """Whether the input seeks (a pipe or a git blob reader does not)."""
        probe = getattr(self._raw, "seekable", None)
        return bool(probe()) if probe is not None else False


class _Capped:
    """Decompressed data, ending early once the input's budget is spent."""

    def __init__(self, inner: Readable, budget: _Budget) -> None:
        self._inner = inner
        self._budget = budget

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` expanded bytes (never an unbounded read)."""
        if self._budget.tripped:
            return b""
        data = self._inner.read(READ if n < 0 else min(n, 4 * READ))
        if data and not self._budget.spend(len(data)):
            return b""
        return data


class _Guarded:
    """A member's stream for the scanner: a corrupt or truncated archive ends it early
    instead of raising inside the scan."""

    def __init__(self, inner: Readable, origin: Origin) -> None:
        self._inner = inner
        self._origin = origin
        self._failed = False

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes; ``b""`` at the end or after an error."""
        if self._failed:
            return b""
        try:
            return self._inner.read(n)
        except _archive_errors():
            self._failed = True
            warn(f"{self._origin.path}: unreadable archive content, scanned up to the error")
            return b""


class Prepend:
    """A reader that first returns ``head``, then the rest of ``tail``."""

    def __init__(self, head: bytes, tail: Readable) -> None:
        self._head = head
        self._tail = tail

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes (all with -1): the head first, then the tail."""
        if self._head:
            if n < 0:
                data, self._head = self._head + self._tail.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            return data
        return self._tail.read(n)


def _read_up_to(stream: Readable, limit: int) -> bytes:
    """Up to ``limit`` bytes; what was read before a read error (a truncated archive)."""
    parts: list[bytes] = []
    size = 0
    try:
        while size < limit and (block := stream.read(min(READ, limit - size))):
            parts.append(block)
            size += len(block)
    except _archive_errors():
        pass
    return b"".join(parts)


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


class _AsOSError:
    """A decompressor whose own error class (lzma's) surfaces as OSError."""

    def __init__(self, inner: Readable, error: type[Exception]) -> None:
        self._inner = inner
        self._error = error

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` decompressed bytes."""
        try:
            return self._inner.read(n)
        except self._error as exc:
            raise OSError(str(exc)) from None


def _decompressor(kind: str, raw: Readable) -> Readable:
    # imported here: a scan of plain text never loads them (start-up time)
    source: Any = raw  # the decompressors only call read()
    if kind == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=source, mode="rb")
    if kind == "bz2":
        import bz2

        return bz2.BZ2File(source, mode="rb")
    import lzma

    return _AsOSError(lzma.LZMAFile(source, mode="rb"), lzma.LZMAError)


def _members(origin: Origin, kind: str, stream: Readable, budget: _Budget, depth: int) -> Iterator[Item]:
    """Items inside one archive, each streamed; nothing is held whole but a nested zip."""
    prefix = origin.path
    if kind == "zip":
        import zipfile

        if isinstance(stream, _Counted) and stream.seekable():
            seekable: Any = stream
        else:  # zip needs random access: a nested one is read into memory, up to a bound
            data = _read_up_to(stream, NESTED_ZIP_LIMIT + 1)
            if len(data) > NESTED_ZIP_LIMIT:
                warn(f"{prefix}: nested zip over {NESTED_ZIP_LIMIT} bytes not opened")
                return
            seekable = io.BytesIO(data)
        with zipfile.ZipFile(seekable) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                with archive.open(info) as member:
                    inner = Origin(f"{prefix}!{info.filename}", *_meta(origin))
                    yield from _expand(inner, _Capped(member, budget), budget, depth + 1)
                if budget.tripped:
                    return
        return
    if kind == "tar":
        import tarfile

        with tarfile.open(fileobj=stream, mode="r|") as archive:  # type: ignore[call-overload]
            for member in archive:
                handle = archive.extractfile(member) if member.isfile() else None
                if handle is not None:
                    inner = Origin(f"{prefix}!{member.name}", *_meta(origin))
                    yield from _expand(inner, handle, budget, depth + 1)
                if budget.tripped:
                    return
        return
    expanded = _Capped(_decompressor(kind, stream), budget)
    head = _read_up_to(expanded, SNIFF * 2)
    if len(head) > 262 and head[257:262] == b"ustar":  # tar.gz / tar.bz2 / tar.xz
        yield from _members(origin, "tar", Prepend(head, expanded), budget, depth)
        return
    yield from _expand(Origin(f"{prefix}!", *_meta(origin)), Prepend(head, expanded), budget, depth + 1)


def _expand(origin: Origin, stream: Readable, budget: _Budget, depth: int) -> Iterator[Item]:
    head = _read_up_to(stream, SNIFF)
    kind = archive_kind(head)
    if kind is not None:
        if depth >= MAX_ARCHIVE_DEPTH:
            return
        seekable = isinstance(stream, _Counted) and stream.seekable()
        source = stream if kind == "zip" and seekable else Prepend(head, stream)
        try:
            yield from _members(origin, kind, source, budget, depth)
        except _archive_errors():
            return
        return
    if is_binary(head):
        return
    rest = _read_up_to(stream, IN_MEMORY_LIMIT)
    if len(rest) < IN_MEMORY_LIMIT:
        yield Item(origin, data=head + rest, size=len(head) + len(rest))
    else:
        yield Item(origin, stream=_Guarded(Prepend(head + rest, stream), origin), size=0)


def expand_stream(origin: Origin, raw: IO[bytes], limits: ExpandLimits | None = None) -> Iterator[Item]:
    """Text items of one input: archives opened (to a depth) and streamed, with the
    expansion bounded by ``limits``; binaries dropped. Each item must be consumed before
    the next is asked for."""
    budget = _Budget(origin, limits or ExpandLimits())
    try:
        yield from _expand(origin, _Counted(raw, budget), budget, 0)
    except _archive_errors():  # an unreadable file
        return


def expand_content(origin: Origin, data: bytes, depth: int = 0, limits: ExpandLimits | None = None) -> Iterator[Item]:
    """Yield text items for in-memory ``data`` (see :func:`expand_stream`)."""
    budget = _Budget(origin, limits or ExpandLimits())
    try:
        yield from _expand(origin, _Counted(io.BytesIO(data), budget), budget, depth)
    except _archive_errors():
        return


def _meta(origin: Origin) -> tuple[str | None, str | None, str | None, str | None]:
    return origin.commit, origin.author, origin.email, origin.date


def read_file(path: Path, display: str, limits: ExpandLimits | None = None) -> Iterator[Item]:
    """Items of one file on disk (archives opened); large content is streamed."""
    try:
        handle = path.open("rb")
    except OSError:
        return
    with handle:
        yield from expand_stream(Origin(display), handle, limits)


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
    from keyguard.scan.sources.ignore import IgnoreMatcher  # only for a folder outside git

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
