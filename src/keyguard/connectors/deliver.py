"""Delivery to files: the old credential replaced by the new one where consumers read it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from keyguard.connectors.checkpoint import write_atomic
from keyguard.connectors.errors import UnknownReferenceError
from keyguard.connectors.secret import Secret


def replace_in_files(targets: Sequence[Path], old: str, new: Secret) -> list[str]:
    """Replace every occurrence of ``old`` by the new value in ``targets``, keeping each file's mode.

    Returns the paths changed; a target that does not hold ``old`` is left alone. Every
    file is rewritten atomically, so a consumer never reads half a file.
    """
    changed: list[str] = []
    for path in targets:
        try:
            text = path.read_text(encoding="utf-8")
            mode = os.stat(path).st_mode & 0o777
        except FileNotFoundError:
            raise UnknownReferenceError(f"delivery target {path} does not exist") from None
        if old and old in text:
            write_atomic(path, text.replace(old, new.reveal()).encode(), mode)
            changed.append(str(path))
    return changed
