"""Git history: every blob introduced by any commit of the selected refs is scanned once
(``git cat-file --batch``), and findings are mapped back to the commits that introduced
those blobs (``git log --raw``), so each secret is reported with its first commit.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO

from keyguard.errors import UsageError
from keyguard.scan.model import Origin

SEP = "\x1f"
# git maps pack files in 1 GiB windows and caches 96 MiB of delta bases by default: on a
# large repository each reader then holds >100 MB resident. git log runs beside the
# cat-file readers (the history is scanned while it is read), so both get small windows
# and cache, keeping a history scan's process tree under its memory bound (issue 14) at
# little cost in speed.
PACK_LIMITS = (
    "-c",
    "core.packedGitWindowSize=16m",
    "-c",
    "core.packedGitLimit=48m",
    "-c",
    "core.deltaBaseCacheLimit=24m",
)
IN_FLIGHT = 256  # blob ids asked of cat-file ahead of the answers read (~10 KiB of pipe)


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


def _pipe_size() -> int:
    """A 1 MiB pipe from git (fewer context switches for hundreds of MB of blobs), or the
    system's default when it allows less."""
    try:
        with open("/proc/sys/fs/pipe-max-size") as f:
            limit = int(f.read())
    except (OSError, ValueError):
        return -1
    return min(limit, 1 << 20)


PIPE_SIZE = _pipe_size()


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


def log_args(*, branch: str | None, since: str | None, max_commits: int | None, reverse: bool = False) -> list[str]:
    """The ``git log`` arguments selecting the commits to scan (oldest first with ``reverse``:
    git applies ``--max-count`` before reversing, so the same commits are selected)."""
    args = [
        "log",
        *(["--reverse"] if reverse else []),
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


def _newest_first(pair: tuple[int, str]) -> int:
    return -pair[0]


class HistoryStream:
    """``git log --raw --reverse`` read as it is produced, oldest commit first.

    Iterating yields, commit by commit, the ``(blob id, path)`` pairs of blobs not seen in
    any older commit, so scanning can start before the whole history is read; the path is
    the one of the blob's oldest introduction (the first in git's order when that commit
    adds the blob at several, as :func:`origin_for` picks it). Once the iteration ends, :meth:`finish` returns the
    :class:`History` (commits newest first, as :func:`read_history` has always given) or
    raises UsageError when git failed. The iterator never raises itself: it may run in a
    worker pool's feeder thread.
    """

    def __init__(
        self, repo: str, *, branch: str | None = None, since: str | None = None, max_commits: int | None = None
    ) -> None:
        self.commits_read = 0
        self._commits: list[Commit] = []
        self._intro: dict[str, list[tuple[int, str]]] = {}
        self._error = ""
        self._history: History | None = None
        self._proc = subprocess.Popen(  # noqa: S603
            _git(repo, *PACK_LIMITS, *log_args(branch=branch, since=since, max_commits=max_commits, reverse=True)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pipesize=PIPE_SIZE,
        )

    def __iter__(self) -> Iterator[list[tuple[str, str]]]:
        proc = self._proc
        assert proc.stdout is not None
        intro = self._intro
        # one string per path however many versions it has, decoded once (bytes are parsed:
        # this loop feeds the workers, so its speed bounds theirs)
        paths: dict[bytes, str] = {}
        index = -1
        fresh: dict[str, str] = {}
        try:
            for raw in proc.stdout:
                if raw.startswith(b"\0"):
                    if fresh:
                        yield list(fresh.items())
                        fresh = {}
                    line = raw[1:].rstrip(b"\n").decode("utf-8", "surrogateescape")
                    sha, author, email, date = (line.split(SEP) + ["", "", ""])[:4]
                    self._commits.append(Commit(sha, author, email, date))
                    index += 1
                    self.commits_read = index + 1
                    continue
                if not raw.startswith(b":"):
                    continue
                meta, _, path = raw.rstrip(b"\n").partition(b"\t")
                fields = meta.split()
                if len(fields) < 5:
                    continue
                new_mode, new_sha, status = fields[1], fields[3], fields[4]
                if status.startswith(b"D") or new_mode in (b"160000", b"120000") or not new_sha.strip(b"0"):
                    continue  # deleted file, submodule or symlink: no blob to scan
                name = paths.get(path)
                if name is None:
                    name = paths[path] = _unquote(path.decode("utf-8", "surrogateescape"))
                blob = new_sha.decode()
                seen = intro.get(blob)
                if seen is None:
                    intro[blob] = [(index, name)]
                    fresh[blob] = name
                else:
                    seen.append((index, name))
            if fresh:
                yield list(fresh.items())
        finally:
            self._close()

    def _close(self) -> None:
        proc = self._proc
        if proc.returncode is not None:
            return
        if proc.stdout is not None:
            proc.stdout.close()
        err = proc.stderr.read() if proc.stderr else b""
        if proc.wait() != 0 and not self._error:
            text = err.decode("utf-8", "replace").strip().splitlines()
            self._error = text[0] if text else "unknown error"

    def finish(self) -> History:
        """The history read (newest commit first); UsageError if git log failed."""
        if self._proc.returncode is None:
            self._proc.kill()
            self._close()
            self._error = self._error or "history not read to its end"
        if self._error:
            raise UsageError(
                f"git log failed: {self._error}",
                hint="check --branch / --since and that the repository has commits",
            )
        if self._history is not None:
            return self._history
        last = len(self._commits) - 1
        intro = self._intro
        # newest commit first and, within a commit, git's order (as git log without
        # --reverse lists them); in place: a large history's table is not doubled
        for blob, pairs in intro.items():
            intro[blob] = [(last - index, path) for index, path in sorted(pairs, key=_newest_first)]
        self._commits.reverse()
        self._history = History(commits=self._commits, introductions=intro)
        return self._history

    def close(self) -> None:
        """Stop git (a scan that ended early)."""
        if self._proc.returncode is None:
            self._proc.kill()
            self._close()


def read_history(
    repo: str,
    *,
    branch: str | None = None,
    since: str | None = None,
    max_commits: int | None = None,
    on_commit: Callable[[int], None] | None = None,
) -> History:
    """The whole selected history as a :class:`History` (streamed, not held as text)."""
    stream = HistoryStream(repo, branch=branch, since=since, max_commits=max_commits)
    reported = 0
    for _ in stream:
        if on_commit is not None and stream.commits_read - reported >= 256:
            reported = stream.commits_read
            on_commit(reported)
    return stream.finish()


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


class CatFile:
    """One long-lived ``git cat-file --batch``, reused for any number of :meth:`blobs`
    calls (a worker starts git once, not once per batch)."""

    def __init__(self, repo: str) -> None:
        self._repo = repo
        self._proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603
            _git(self._repo, *PACK_LIMITS, "cat-file", "--batch"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=1 << 20,
            pipesize=PIPE_SIZE,
        )

    def blobs(
        self, blob_ids: Sequence[str], *, in_memory_limit: int = 16 * 1024 * 1024
    ) -> Iterator[tuple[str, int, bytes | _BlobReader]]:
        """Yield ``(blob id, size, content)`` for each id that is a blob, in order; big
        blobs come as a stream that must be consumed before the next item is requested.
        At most IN_FLIGHT ids are asked ahead of what was read, so neither pipe fills up
        and no writer thread is needed."""
        if self._proc.returncode is not None:  # a previous call was left unfinished
            self._proc = self._start()
        try:
            yield from self._answers(blob_ids, in_memory_limit)
        except BaseException:
            self.close()  # answers may be left in the pipe: the next call starts afresh
            raise

    def _answers(self, blob_ids: Sequence[str], in_memory_limit: int) -> Iterator[tuple[str, int, bytes | _BlobReader]]:
        stdin, stdout = self._proc.stdin, self._proc.stdout
        assert stdin is not None and stdout is not None
        asked = 0
        for answered in range(len(blob_ids)):
            if asked - answered < IN_FLIGHT // 2 and asked < len(blob_ids):
                more = blob_ids[asked : answered + IN_FLIGHT]
                stdin.write(("\n".join(more) + "\n").encode())
                stdin.flush()
                asked += len(more)
            header = stdout.readline()
            if not header:
                raise OSError("git cat-file stopped")
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

    def close(self) -> None:
        """Stop git."""
        proc = self._proc
        for pipe in (proc.stdin, proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except BrokenPipeError:
                pass
        proc.kill()
        proc.wait()


def iter_blobs(
    repo: str, blob_ids: Iterable[str], *, in_memory_limit: int = 16 * 1024 * 1024
) -> Iterator[tuple[str, int, bytes | _BlobReader]]:
    """Yield ``(blob id, size, content)`` for each id (one git process for this call)."""
    reader = CatFile(repo)
    try:
        yield from reader.blobs(list(blob_ids), in_memory_limit=in_memory_limit)
    finally:
        reader.close()


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
