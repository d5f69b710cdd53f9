"""Writing a file safely: a private temporary file beside the target, then one atomic rename.

Every file keyguard writes outside its database (``--out FILE``, rewritten key
references and their backups) goes through :func:`write_atomic`:

* the bytes go to a new file made by :func:`tempfile.mkstemp` in the target's
  own directory (``O_CREAT | O_EXCL``, mode 0600, an unpredictable name), so no
  name can be planted in advance and nothing is written through a link;
* the file is fsynced, given its final mode (and owner), renamed over the target
  with :func:`os.replace` (which replaces a link, never follows it), and the
  directory is fsynced: readers see the old file or the new one, never half;
* a symbolic link at the target is refused unless ``allow_symlink``; then the
  link's target is written and the link kept.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from keyguard.errors import RefusedError, UsageError


def check_not_symlink(path: Path, allow_symlink: bool = False) -> Path:
    """The path to write: ``path`` itself, or the link's target when links are allowed."""
    if not path.is_symlink():
        return path
    if not allow_symlink:
        raise RefusedError(f"{path} is a symbolic link", hint="write to the file it points at, not through the link")
    return path.resolve()


def write_atomic(
    path: Path,
    data: bytes,
    *,
    mode: int = 0o600,
    owner: tuple[int, int] | None = None,
    allow_symlink: bool = False,
) -> Path:
    """Replace ``path`` with ``data`` atomically; returns the file written.

    ``owner`` ``(uid, gid)`` is applied before the rename; a change of owner the
    process may not make is refused (:class:`RefusedError`) and nothing is written.
    """
    target = check_not_symlink(path, allow_symlink)
    directory = target.parent
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".kg-tmp")
    except FileNotFoundError:
        raise UsageError(f"cannot write {path}: no directory {directory}") from None
    except PermissionError:
        raise RefusedError(f"cannot write {path}: permission denied in {directory}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if owner is not None:
                _chown(handle.fileno(), owner, path)
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
    return target


def _chown(fd: int, owner: tuple[int, int], path: Path) -> None:
    info = os.fstat(fd)
    if (info.st_uid, info.st_gid) == owner:
        return
    try:
        os.fchown(fd, *owner)
    except PermissionError:
        raise RefusedError(
            f"cannot keep the owner of {path} (uid {owner[0]}, gid {owner[1]})",
            hint="run as that user or as root",
        ) from None


def _fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
