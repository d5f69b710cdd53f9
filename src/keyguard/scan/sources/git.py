"""Git history: every blob introduced by any commit of the selected refs is scanned once
(``git cat-file --batch``), and findings are mapped back to the commits that introduced
those blobs (``git log --raw``), so each secret is reported with its first commit.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO

from keyguard.errors import UsageError
from keyguard.scan.model import Origin

NULL_SHA = "0" * 40
SEP = "\x1f"
# git maps pack files in 1 GiB windows and caches 96 MiB of delta bases by default: on a
# large repository each reader then holds >100 MB resident. Smaller windows and cache keep
# a history scan's process tree under its memory bound (issue 14) at little cost in speed.
CAT_FILE_LIMITS = (
    "-c",
    "core.packedGitWindowSize=16m",
    "-c",
    "core.packedGitLimit=64m",
    "-c",
    "core.deltaBaseCacheLimit=24m",
)


@dataclass(frozen=True, slots=True)
class Commit:
    """A commit's identity and author."""

    sha: str
    author: str
    email: str
    date: str


@dataclass
class History:
    """Commits newest first, and for each blob the ``(commit index, path)`` pairs that added it."""

    commits: list[Commit] = field(default_factory=list)
    introductions: dict[str, list[tuple[int, str]]] = field(default_factory=dict)


def _git(repo: str, *args: str) -> list[str]:
    return ["git", "-C", repo, "-c", "core.quotePath=false", *args]


def check_repo(repo: str) -> None:
    """Raise UsageError unless ``repo`` is inside a git repository."""
    probe = subprocess.run(  # noqa: S603
        _git(repo, "rev-parse", "--git-dir"), capture_output=True, check=False
    )
    if probe.returncode != 0:
        raise UsageError(f"not a git repository: {repo}", hint="drop --git or point at a repo")


def _unquote(path: str) -> str:
    if len(path) >= 2 and path[0] == '"' and path[-1] == '"':
        raw = path[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        return raw.encode("latin-1", "replace").decode("utf-8", "replace")
    return path


def log_args(*, branch: str | None, since: str | None, max_commits: int | None) -> list[str]:
    """The ``git log`` arguments selecting the commits to scan."""
    args = [
        "log",
        "--raw",
        "--no-abbrev",
        "--no-renames",
        "--diff-merges=first-parent",
        f"--format=%x00%H{SEP}%an{SEP}%ae{SEP}%aI",
    ]
    if since:
        args.append(f"--since={since}")
    if max_commits:
        args.append(f"--max-count={max_commits}")
    args.append(branch if branch else "--all")
    args.append("--")
    return args


def read_history(
    repo: str,
    *,
    branch: str | None = None,
    since: str | None = None,
    max_commits: int | None = None,
    on_commit: Callable[[int], None] | None = None,
) -> History:
    """Parse ``git log --raw`` into a :class:`History` (streamed, not held as text)."""
    history = History()
    proc = subprocess.Popen(  # noqa: S603
        _git(repo, *log_args(branch=branch, since=since, max_commits=max_commits)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    index = -1
    intro = history.introductions
    paths: dict[str, str] = {}  # one string per path, however many versions it has
    for raw in proc.stdout:
        line = raw.decode("utf-8", "surrogateescape").rstrip("\n")
        if line.startswith("\0"):
            sha, author, email, date = (line[1:].split(SEP) + ["", "", ""])[:4]
            history.commits.append(Commit(sha, author, email, date))
            index += 1
            if on_commit is not None and index % 256 == 0:
                on_commit(index)
            continue
        if not line.startswith(":"):
            continue
        meta, _, path = line.partition("\t")
        fields = meta.split()
        if len(fields) < 5:
            continue
        new_mode, new_sha, status = fields[1], fields[3], fields[4]
        if new_sha == NULL_SHA or status.startswith("D") or new_mode in ("160000", "120000"):
            continue
        name = _unquote(path)
        intro.setdefault(new_sha, []).append((index, paths.setdefault(name, name)))
    err = proc.stderr.read() if proc.stderr else b""
    if proc.wait() != 0:
        text = err.decode("utf-8", "replace").strip().splitlines()
        raise UsageError(
            f"git log failed: {text[0] if text else 'unknown error'}",
            hint="check --branch / --since and that the repository has commits",
        )
    return history


class _BlobReader:
    """Reads exactly ``size`` bytes of one blob from the cat-file pipe (a file-like)."""

    def __init__(self, pipe: IO[bytes], size: int) -> None:
        self._pipe = pipe
        self._left = size

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of the blob (the rest with -1); ``b""`` at its end."""
        if self._left <= 0:
            return b""
        n = self._left if n < 0 else min(n, self._left)
        data = self._pipe.read(n)
        self._left -= len(data)
        return data

    def drain(self) -> None:
        """Skip what the consumer did not read, so the pipe stays in step."""
        while self.read(1 << 20):
            pass


def iter_blobs(
    repo: str, blob_ids: Iterable[str], *, in_memory_limit: int = 16 * 1024 * 1024
) -> Iterator[tuple[str, int, bytes | _BlobReader]]:
    """Yield ``(blob id, size, content)`` for each id; big blobs come as a stream that
    must be consumed before the next item is requested."""
    proc = subprocess.Popen(  # noqa: S603
        _git(repo, *CAT_FILE_LIMITS, "cat-file", "--batch"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        bufsize=1 << 20,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def feed() -> None:
        try:
            for blob in blob_ids:
                stdin.write(blob.encode() + b"\n")
        except BrokenPipeError:
            pass
        finally:
            try:
                stdin.close()
            except BrokenPipeError:
                pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        while True:
            header = stdout.readline()
            if not header:
                break
            parts = header.split()
            if len(parts) < 3 or parts[1] != b"blob":
                if len(parts) >= 3 and parts[1] != b"missing":
                    stdout.read(int(parts[2]) + 1)
                continue
            sha, size = parts[0].decode(), int(parts[2])
            if size <= in_memory_limit:
                data = stdout.read(size)
                stdout.read(1)
                yield sha, size, data
            else:
                reader = _BlobReader(stdout, size)
                yield sha, size, reader
                reader.drain()
                stdout.read(1)
    finally:
        stdout.close()
        proc.kill()
        proc.wait()
        writer.join(timeout=1)


def pack_order(repo: str, wanted: Mapping[str, object]) -> list[tuple[str, int]]:
    """``(blob id, size)`` of the wanted blobs in pack order (cheap delta resolution when
    read back in this order); wanted blobs git did not list come last."""
    proc = subprocess.Popen(  # noqa: S603
        _git(
            repo,
            "cat-file",
            "--batch-all-objects",
            "--unordered",
            "--batch-check=%(objectname) %(objecttype) %(objectsize)",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    for line in proc.stdout:
        parts = line.split()
        if len(parts) == 3 and parts[1] == b"blob":
            sha = parts[0].decode()
            if sha in wanted and sha not in seen:
                seen.add(sha)
                out.append((sha, int(parts[2])))
    proc.wait()
    out.extend((sha, 0) for sha in wanted if sha not in seen)
    return out


def origin_for(history: History, blob: str) -> Origin:
    """The origin of the first (oldest) commit that introduced ``blob``."""
    index, path = max(history.introductions[blob], key=lambda pair: pair[0])
    commit = history.commits[index]
    return Origin(path, commit.sha, commit.author, commit.email, commit.date)


def staged_blobs(repo: str) -> list[tuple[str, str]]:
    """``(blob id, path)`` of every added, copied or modified file in the index."""
    names = subprocess.run(  # noqa: S603
        _git(repo, "diff", "--cached", "--name-only", "-z", "--diff-filter=ACMRT", "--no-renames"),
        capture_output=True,
        check=False,
    )
    if names.returncode != 0:
        raise UsageError("cannot read the staged changes", hint="run inside a git repository")
    paths = [p for p in names.stdout.decode("utf-8", "surrogateescape").split("\0") if p]
    if not paths:
        return []
    listing = subprocess.run(  # noqa: S603
        _git(repo, "ls-files", "-s", "-z", "--", *paths), capture_output=True, check=True
    ).stdout.decode("utf-8", "surrogateescape")
    out = []
    for entry in listing.split("\0"):
        if not entry:
            continue
        meta, _, path = entry.partition("\t")
        mode, sha, _stage = meta.split()
        if mode not in ("160000", "120000"):
            out.append((sha, path))
    return out


def staged_added_lines(repo: str) -> dict[str, set[int]]:
    """Per path, the line numbers the staged diff adds (``git diff --cached -U0``)."""
    diff = subprocess.run(  # noqa: S603
        _git(repo, "diff", "--cached", "-U0", "--no-color", "--no-renames", "--no-ext-diff"),
        capture_output=True,
        check=False,
    ).stdout.decode("utf-8", "surrogateescape")
    added: dict[str, set[int]] = {}
    current: set[int] | None = None
    for line in diff.splitlines():
        if line.startswith("+++ "):
            name = line[4:]
            name = _unquote(name)
            current = added.setdefault(name[2:] if name.startswith("b/") else name, set())
        elif line.startswith("@@") and current is not None:
            plus = line.split("+", 1)[1].split(" ", 1)[0]
            start, _, count = plus.partition(",")
            n = int(count) if count else 1
            current.update(range(int(start), int(start) + n))
    return added
