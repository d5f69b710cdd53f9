"""What every importer shares: the result types, opening files (gzip or not), line reading."""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol, cast

from keyguard.monitor.event import MonitorEvent


@dataclass(slots=True, frozen=True)
class Rejected:
    """A line or record that could not be imported, with its position and why."""

    source_line: int
    reason: str
    source_file: str | None = None


Parsed = MonitorEvent | Rejected


@dataclass
class ImportOptions:
    """Format options: CSV column mapping, the credential rule of access logs, HMAC key."""

    column_map: dict[str, str] = field(default_factory=dict)
    credential: str | None = None
    extra_fields: list[str] = field(default_factory=list)
    fingerprint_key: bytes = b""
    delimiter: str = ","
    is_tail: bool = False  # reading a chunk of a followed file: more lines will come


class Importer(Protocol):
    """Parse one opened binary stream into events and rejections, streaming."""

    def __call__(self, stream: IO[bytes], *, name: str | None, options: ImportOptions) -> Iterator[Parsed]: ...


class CountingReader(io.RawIOBase):
    """Wraps a binary file and counts the bytes read from it (drives the progress bar)."""

    def __init__(self, raw: IO[bytes], on_read: Callable[[int], None] | None = None) -> None:
        self._raw = raw
        self._on_read = on_read
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        readinto = getattr(self._raw, "readinto", None)
        if readinto is not None:  # straight into the caller's buffer: no copy
            n = int(readinto(buffer) or 0)
        else:
            data = self._raw.read(len(buffer))
            n = len(data)
            buffer[:n] = data
        self.count += n
        if self._on_read is not None:
            self._on_read(n)
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_maybe_gzip(raw: IO[bytes]) -> IO[bytes]:
    """Return a buffered reader of ``raw``, decompressing when it starts with the gzip magic."""
    buffered = io.BufferedReader(cast(io.RawIOBase, raw), 1 << 20)
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        gz = gzip.GzipFile(fileobj=buffered)
        return cast(IO[bytes], io.BufferedReader(cast(io.RawIOBase, gz), 1 << 20))
    return cast(IO[bytes], buffered)


def iter_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, line)`` without the newline; blank lines are skipped."""
    for number, line in enumerate(stream, 1):
        stripped = line.strip()
        if stripped:
            yield number, stripped


def input_files(target: str) -> list[Path | None]:
    """The files to read for ``target``: ``-`` (stdin, as ``None``), a file, or a directory."""
    if target == "-":
        return [None]
    path = Path(target)
    if path.is_dir():
        found: list[Path | None] = [p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith(".")]
        return found
    return [path]


def open_input(path: Path | None, on_read: Callable[[int], None] | None = None) -> IO[bytes]:
    """Open a file (or stdin) for reading, counting bytes, gzip transparently."""
    raw: IO[bytes] = sys.stdin.buffer if path is None else path.open("rb")
    return open_maybe_gzip(cast(IO[bytes], CountingReader(raw, on_read)))


def text(value: object, limit: int) -> str | None:
    """A string field cut to ``limit`` characters, or None for missing/empty."""
    if value is None or value == "":
        return None
    return str(value)[:limit]
