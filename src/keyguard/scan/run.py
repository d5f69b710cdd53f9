"""Orchestration: turn sources into findings (files/stdin, git history, staged changes)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from keyguard.scan.engine import Scanner
from keyguard.scan.model import Finding, Origin
from keyguard.scan.sources import git as gitsrc
from keyguard.scan.sources.files import (
    SNIFF,
    Item,
    expand_content,
    expand_stream,
    read_file,
    read_stdin,
    walk_dir,
)

Progress = Callable[[int, int], None]  # (bytes scanned, commits read)
BATCH = 256  # below this many blobs, no worker processes
CHUNK_BLOBS = 20_000
BLOB_IN_MEMORY = 1024 * 1024  # larger blobs are streamed (bounded memory per blob)


def _noop(done: int, commits: int) -> None:
    del done, commits


def scan_item(scanner: Scanner, item: Item) -> list[Finding]:
    """Findings of one item (buffer or stream)."""
    if item.data is not None:
        return scanner.scan_bytes(item.data, item.origin)
    assert item.stream is not None
    return list(scanner.scan_stream(item.stream, item.origin))


PARALLEL_FILES_BYTES = 64 * 1024 * 1024  # below this much content, no worker processes


def _list_files(targets: list[str], no_ignore: bool) -> list[tuple[Path, int]]:
    out: list[tuple[Path, int]] = []
    for target in targets:
        path = Path(target)
        for file in walk_dir(path, no_ignore=no_ignore) if path.is_dir() else [path]:
            try:
                out.append((file, file.stat().st_size))
            except OSError:
                continue
    return out


def _scan_file_batch(paths: list[tuple[str, str]]) -> tuple[list[Finding], int]:
    scanner: Scanner = _WORKER["scanner"]
    findings: list[Finding] = []
    total = 0
    for name, _ in paths:
        for item in read_file(Path(name), name, scanner.config.limits):
            findings.extend(scan_item(scanner, item))
            total += item.size
    return findings, total


def scan_targets(
    scanner: Scanner,
    targets: list[str],
    *,
    no_ignore: bool = False,
    progress: Progress = _noop,
    jobs: int = 0,
) -> list[Finding]:
    """Scan files, directories (and archives inside them) and ``-`` for stdin; large trees
    are split across worker processes."""
    findings: list[Finding] = []
    if "-" in targets:
        for item in read_stdin():
            findings.extend(scan_item(scanner, item))
    files = _list_files([t for t in targets if t != "-"], no_ignore)
    jobs = jobs or min(2, os.cpu_count() or 1)
    total = sum(size for _, size in files)
    done = 0
    if jobs > 1 and len(files) > 1 and total > PARALLEL_FILES_BYTES:
        _WORKER.update(scanner=scanner)
        try:
            import multiprocessing

            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(jobs) as pool:
                for found, size in pool.imap_unordered(
                    _scan_file_batch, _chunks([(str(p), n) for p, n in files], jobs * 8, str)
                ):
                    findings.extend(found)
                    done += size
                    progress(done, 0)
        finally:
            _WORKER.clear()
        findings.sort(key=lambda f: (f.file, f.line, f.column))
        return findings
    for path, _size in files:
        for item in read_file(path, path.as_posix(), scanner.config.limits):
            findings.extend(scan_item(scanner, item))
            done += item.size
            progress(done, 0)
    return findings


# -- git history ----------------------------------------------------------------------

_WORKER: dict[str, Any] = {}
TASK_BLOBS = 128  # blobs per worker task: small, so scanning starts while git log still runs


def _blob_reader() -> gitsrc.CatFile:
    """This process's long-lived ``git cat-file`` (started on first use)."""
    reader: gitsrc.CatFile | None = _WORKER.get("reader")
    if reader is None:
        reader = _WORKER["reader"] = gitsrc.CatFile(_WORKER["repo"])
        if _WORKER.get("pooled"):
            from multiprocessing.util import Finalize

            # run when the worker exits: git is waited for, so its CPU time is the tree's
            Finalize(reader, reader.close, exitpriority=10)
    return reader


def _init_worker() -> None:
    _WORKER["pooled"] = True


def _scan_blob_batch(batch: list[tuple[str, str]]) -> tuple[list[tuple[str, Finding]], int]:
    """Findings of ``(blob id, path)`` pairs; the path is the one of the blob's oldest
    introduction (commit fields are set later, by :func:`attribute`)."""
    scanner: Scanner = _WORKER["scanner"]
    paths = dict(batch)
    limits = scanner.config.limits
    out: list[tuple[str, Finding]] = []
    total = 0
    for blob, size, content in _blob_reader().blobs([b for b, _ in batch], in_memory_limit=BLOB_IN_MEMORY):
        total += size
        origin = Origin(paths[blob])
        if isinstance(content, bytes) and content.find(b"\0", 0, SNIFF) < 0:
            out.extend((blob, f) for f in scanner.scan_bytes(content, origin))
            continue
        # archives (bounded expansion) and large blobs: streamed, never held whole
        items = expand_content(origin, content, limits=limits) if isinstance(content, bytes) else None
        for inner in items if items is not None else expand_stream(origin, content, limits):  # type: ignore[arg-type]
            for finding in scan_item(scanner, inner):
                finding.extra["member"] = finding.file[len(origin.path) :]  # "!inner/path" in an archive
                out.append((blob, finding))
    return out, total


def _chunks(blobs: list[tuple[str, int]], parts: int, path_of: Callable[[str], str]) -> Iterable[list[tuple[str, str]]]:
    """Contiguous runs of roughly equal byte size, as (name, path)."""
    total = sum(size for _, size in blobs) or 1
    target = max(total // max(parts, 1), 1)
    chunk: list[tuple[str, str]] = []
    acc = 0
    for sha, size in blobs:
        chunk.append((sha, path_of(sha)))
        acc += size
        if acc >= target or len(chunk) >= CHUNK_BLOBS:
            yield chunk
            chunk, acc = [], 0
    if chunk:
        yield chunk


def _tasks(commits: Iterable[list[tuple[str, str]]], size: int) -> Iterator[list[tuple[str, str]]]:
    """The new blobs of successive commits regrouped into tasks of ``size`` blobs."""
    task: list[tuple[str, str]] = []
    for fresh in commits:
        task.extend(fresh)
        while len(task) >= size:
            yield task[:size]
            task = task[size:]
    if task:
        yield task


def scan_history(
    scanner: Scanner,
    repo: str,
    *,
    branch: str | None = None,
    since: str | None = None,
    max_commits: int | None = None,
    jobs: int = 0,
    progress: Progress = _noop,
    stream: gitsrc.HistoryStream | None = None,
) -> list[Finding]:
    """Scan every blob introduced in the selected history once; attribute each finding to
    the oldest commit that introduced it, per path.

    The history is read oldest commit first while the blobs it introduces are scanned: the
    workers get each new blob with the path of its first introduction as soon as git log
    names it. ``stream`` is that history already opened on ``repo`` with the same
    selection (the CLI starts git before it loads the rules)."""
    if stream is None:
        gitsrc.check_repo(repo)
    jobs = jobs or min(2, os.cpu_count() or 1)
    _WORKER.update(scanner=scanner, repo=repo)
    # the workers are forked before the history is read: each then holds the scanner only,
    # not a copy of the parent's commit and blob tables (the process tree's RSS is bounded)
    pool = None
    if jobs > 1:
        import multiprocessing  # here: a small scan never loads it (start-up time)

        pool = multiprocessing.get_context("fork").Pool(jobs, initializer=_init_worker)
    results: list[tuple[str, Finding]] = []
    done = 0
    if stream is None:
        stream = gitsrc.HistoryStream(repo, branch=branch, since=since, max_commits=max_commits)
    try:
        tasks = _tasks(stream, TASK_BLOBS)
        first: list[list[tuple[str, str]]] = []
        for task in tasks:  # a small history is scanned here, without worker processes
            first.append(task)
            if sum(map(len, first)) > BATCH:
                break
        if pool is not None and sum(map(len, first)) > BATCH:
            for found, size in pool.imap_unordered(_scan_blob_batch, itertools.chain(first, tasks)):
                results.extend(found)
                done += size
                progress(done, stream.commits_read)
            pool.close()  # the workers exit on their own, closing their git readers
            pool.join()
            pool = None
        else:
            for task in itertools.chain(first, tasks):
                found, size = _scan_blob_batch(task)
                results.extend(found)
                done += size
                progress(done, stream.commits_read)
    finally:
        stream.close()
        if pool is not None:
            pool.terminate()
            pool.join()
        reader = _WORKER.get("reader")
        if reader is not None:
            reader.close()
        _WORKER.clear()
    return attribute(stream.finish(), results, scanner)


def attribute(history: gitsrc.History, results: list[tuple[str, Finding]], scanner: Scanner) -> list[Finding]:
    """One finding per (rule, secret, path), carrying the first commit that introduced it."""
    best: dict[tuple[str, str, str, int], tuple[int, Finding]] = {}
    for blob, finding in results:
        for index, path in history.introductions.get(blob, []):
            if scanner.config.allows_path(path):
                continue
            member = finding.extra.get("member", "")
            key = (finding.rule, finding.secret_sha256, path + member, finding.extra.get("part", 0))
            current = best.get(key)
            if current is None or index > current[0]:
                best[key] = (index, finding_at(finding, history.commits[index], path))
    ordered = sorted(best.values(), key=lambda pair: (-pair[0], pair[1].file, pair[1].line))
    return [finding for _, finding in ordered]


def finding_at(finding: Finding, commit: gitsrc.Commit, path: str) -> Finding:
    """A copy of ``finding`` placed at ``commit`` and ``path`` (inside an archive at ``path``
    when the finding was in one of its members)."""
    extra = dict(finding.extra)
    member = extra.pop("member", "")
    return replace(
        finding,
        file=path + member,
        commit=commit.sha,
        author=commit.author,
        email=commit.email,
        date=commit.date,
        extra=extra,
    )


def scan_staged(scanner: Scanner, repo: str) -> list[Finding]:
    """Findings on the lines the staged diff adds (for pre-commit hooks)."""
    gitsrc.check_repo(repo)
    entries = gitsrc.staged_blobs(repo)
    if not entries:
        return []
    added = gitsrc.staged_added_lines(repo)
    paths = dict(entries)
    findings: list[Finding] = []
    for blob, _size, content in gitsrc.iter_blobs(repo, [sha for sha, _ in entries], in_memory_limit=BLOB_IN_MEMORY):
        path = paths[blob]
        if isinstance(content, bytes):
            items = expand_content(Origin(path), content, limits=scanner.config.limits)
        else:
            items = expand_stream(Origin(path), content, scanner.config.limits)  # type: ignore[arg-type]
        for item in items:
            for finding in scan_item(scanner, item):
                span = finding.secret.count("\n")
                lines = set(range(finding.line, finding.line + span + 1))
                if lines & added.get(path, set()) or "!" in finding.file:
                    findings.append(finding)
    return findings
