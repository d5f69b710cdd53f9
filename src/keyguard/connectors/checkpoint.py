"""Progress of a long step on disk, so a step killed with ``kill -9`` resumes where it stopped.

A checkpoint is two files beside each other, both mode 0600:

* ``NAME`` — the step's state as JSON, replaced atomically (write a temporary file,
  fsync, ``rename``, fsync the directory);
* ``NAME.log`` — one JSON line per finished item, appended and fsynced per batch; a
  torn last line (the process died mid-write) is ignored on reading.

Neither file ever holds a credential: an adapter that creates one records its id only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from keyguard.connectors.errors import StepStateError


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` in one step (temp file, fsync, rename, fsync dir)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Checkpoint:
    """The state and the finished items of one step on one resource."""

    def __init__(self, path: Path, *, ref: str, step: str) -> None:
        self.path = path
        self.log_path = path.with_name(path.name + ".log")
        self.ref = ref
        self.step = step
        self.state: dict[str, Any] = {}
        self.done: dict[str, Any] = {}
        self._load()

    @property
    def is_new(self) -> bool:
        """True when nothing was recorded yet."""
        return not self.state and not self.done

    def _load(self) -> None:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            document = None
        except (OSError, ValueError):
            raise StepStateError(f"checkpoint {self.path} is unreadable", hint="inspect or remove it") from None
        if document is not None:
            if document.get("ref") != self.ref or document.get("step") != self.step:
                raise StepStateError(
                    f"checkpoint {self.path} belongs to {document.get('step')} of {document.get('ref')}",
                    hint="use another checkpoint path for this step",
                )
            self.state = dict(document.get("state", {}))
        try:
            lines = self.log_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # torn last line of a killed writer
            if isinstance(entry, dict) and "k" in entry:
                self.done[str(entry["k"])] = entry.get("v")

    def save(self, **changes: Any) -> None:
        """Merge ``changes`` into the state and write it atomically."""
        self.state.update(changes)
        body = json.dumps({"ref": self.ref, "step": self.step, "state": self.state}, sort_keys=True)
        write_atomic(self.path, body.encode())

    def record(self, items: Iterable[tuple[str, Any]]) -> None:
        """Append finished items (key, value) and make them durable before returning."""
        lines = [json.dumps({"k": key, "v": value}, sort_keys=True) + "\n" for key, value in items]
        if not lines:
            return
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, "".join(lines).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        for line in lines:
            entry = json.loads(line)
            self.done[str(entry["k"])] = entry["v"]

    def clear(self) -> None:
        """Remove both files (the step finished and its result was handed back)."""
        for p in (self.path, self.log_path):
            p.unlink(missing_ok=True)
