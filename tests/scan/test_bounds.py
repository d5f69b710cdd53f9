"""Bounded memory (issue 12 point 10, issue 14): compressed input cannot expand without
limit, and a big archive member or one very long line is scanned in bounded memory, with
a secret that crosses a chunk edge still found. RSS is measured on a real ``keyguard scan``
process (``os.wait4``), against the same process scanning a tiny file."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from keyguard.scan import engine
from keyguard.scan.catalog import load_rules
from keyguard.scan.config import ExpandLimits, parse_config
from keyguard.scan.engine import Scanner
from keyguard.scan.model import Origin
from keyguard.scan.rule import Rule
from keyguard.scan.run import scan_item
from keyguard.scan.sources.files import expand_content, read_file

GH = "{crc:ghp}"
SRC = Path(__file__).resolve().parents[2] / "src"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def baseline_rss(tmp_path_factory: pytest.TempPathFactory) -> int:
    tiny = tmp_path_factory.mktemp("tiny") / "a.txt"
    tiny.write_text("hello\n")
    return min(_measured(str(tiny))[3] for _ in range(2))  # the first may validate the catalog


# The scan runs under a small launcher that reports its child's peak RSS: a child forked
# straight from pytest would inherit pytest's RSS high-water mark across exec.
LAUNCH = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    "sys.stderr.write('\\nmaxrss=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "sys.exit(code)"
)


def _measured(*args: str) -> tuple[int, list[dict[str, object]], str, int, float]:
    """``keyguard scan ARGS -f json``: exit code, records, stderr, peak RSS (bytes), wall s."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    start = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            LAUNCH,
            sys.executable,
            "-m",
            "keyguard",
            "scan",
            "-f",
            "json",
            "--show-secrets",
            "-j",
            "1",
            *args,
        ],
        capture_output=True,
        env=env,
        check=False,
    )
    wall = time.monotonic() - start
    err, _, rss = done.stderr.decode().rpartition("\nmaxrss=")
    return done.returncode, json.loads(done.stdout or b"[]"), err, int(rss) * 1024, wall


def _text(size: int, seed: int = 7) -> bytes:
    """Hard-to-compress lines (hex of a PRNG), ``size`` bytes."""
    import random

    rng = random.Random(seed)
    lines = []
    total = 0
    while total < size:
        line = f"row {total:010d} {rng.getrandbits(160):040x}\n".encode()
        lines.append(line)
        total += len(line)
    return b"".join(lines)[:size]


def test_gzip_bomb_is_truncated_with_a_warning_and_bounded_rss(
    tmp_path: Path, gen: Callable[[str], str], baseline_rss: int
) -> None:
    token = gen(GH)
    filler = gzip.compress(b"a" * (64 * MIB), compresslevel=9)  # ~64 KiB each
    bomb = tmp_path / "bomb.gz"
    with bomb.open("wb") as handle:
        handle.write(gzip.compress(f"token = '{token}'\n".encode()))
        for _ in range(16):  # gzip members concatenate: 1 GiB once expanded
            handle.write(filler)
        handle.write(gzip.compress(f"late = '{gen(GH)}'\n".encode()))
    assert bomb.stat().st_size < 2 * MIB
    code, records, err, rss, wall = _measured(str(bomb))
    assert "truncated" in err and "bomb.gz" in err
    assert [r["secret"] for r in records] == [token] and code == 1
    assert rss < baseline_rss + 64 * MIB, (rss, baseline_rss)
    assert wall < 60


def test_total_expansion_cap_from_config(tmp_path: Path, gen: Callable[[str], str]) -> None:
    first, second = gen(GH), gen(GH)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        for name, data in (("a.txt", f"t = '{first}'\n".encode() + _text(300_000)), ("b.txt", f"t = '{second}'\n")):
            info = tarfile.TarInfo(name)
            body = data if isinstance(data, bytes) else data.encode()
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
    config = parse_config({"scan": {"max_expanded_bytes": 200_000, "max_expansion_ratio": 50}})
    assert config.limits == ExpandLimits(max_expanded_bytes=200_000, max_expansion_ratio=50.0)
    scanner = Scanner(_rules(), config=config)
    found = [
        f.secret
        for item in expand_content(Origin("r.tgz"), buf.getvalue(), limits=config.limits)
        for f in scan_item(scanner, item)
    ]
    assert found == [first]  # b.txt lies past the cap


def test_big_archive_member_streamed_in_bounded_memory(
    tmp_path: Path, gen: Callable[[str], str], baseline_rss: int
) -> None:
    token = gen(GH)
    body = _text(8 * MIB) + f"token = '{token}'\n".encode() + _text(8 * MIB, seed=8)
    archive = tmp_path / "dist.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("big/data.txt", body)
    code, records, err, rss, _ = _measured(str(archive))
    assert code == 1 and err == ""
    assert [(r["file"], r["line"], r["secret"]) for r in records] == [
        (f"{archive}!big/data.txt", body[: body.index(b"token")].count(b"\n") + 1, token)
    ]
    # 16 MiB of member: bounded, not ~23 bytes of RSS per byte
    assert rss < baseline_rss + 48 * MIB, (rss, baseline_rss)


def test_fifty_megabyte_line_in_bounded_memory(tmp_path: Path, gen: Callable[[str], str], baseline_rss: int) -> None:
    token = gen(GH)
    edge = engine.CHUNK * 3 - 10  # the secret crosses a chunk edge
    path = tmp_path / "bundle.min.js"
    with path.open("wb") as handle:
        handle.write(b"x" * (edge - 5) + b"t='")
        handle.write(token.encode() + b"';")
        handle.write(b"y" * (50 * MIB - edge))
    code, records, _, rss, _ = _measured(str(path))
    assert code == 1
    assert [(r["line"], r["column"], r["secret"]) for r in records] == [(1, edge - 1, token)]
    assert rss < baseline_rss + 48 * MIB, (rss, baseline_rss)


def test_secret_across_a_chunk_edge_in_stream(monkeypatch: pytest.MonkeyPatch, gen: Callable[[str], str]) -> None:
    monkeypatch.setattr(engine, "CHUNK", 4096)
    monkeypatch.setattr(engine, "OVERLAP", 1024)
    scanner = Scanner(_rules())
    tokens = [gen(GH) for _ in range(5)]
    line = b"".join(b"q" * (4096 - 20) + f" k='{t}' ".encode() for t in tokens)  # one line, no newline
    findings = list(scanner.scan_stream(io.BytesIO(line), Origin("one-line.txt")))
    assert sorted(f.secret for f in findings) == sorted(tokens)
    for finding in findings:
        assert line.index(finding.secret.encode()) + 1 == finding.column and finding.line == 1


def test_tar_and_nested_members_still_found(tmp_path: Path, gen: Callable[[str], str]) -> None:
    token = gen(GH)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as handle:
        handle.writestr("conf/app.env", f"TOKEN={token}\n")
    outer = tmp_path / "bundle.tar.xz"
    with tarfile.open(outer, "w:xz") as archive:
        info = tarfile.TarInfo("pkg/app.whl")
        info.size = len(inner.getvalue())
        archive.addfile(info, io.BytesIO(inner.getvalue()))
    scanner = Scanner(_rules())
    found = [
        (item.origin.path, f.secret)
        for item in read_file(outer, str(outer))
        for f in scanner.scan_bytes(item.data or b"", item.origin)
    ]
    assert found == [(f"{outer}!pkg/app.whl!conf/app.env", token)]


def test_truncated_gzip_member_is_not_fatal(tmp_path: Path, gen: Callable[[str], str]) -> None:
    token = gen(GH)
    blob = gzip.compress(f"t = '{token}'\n".encode() + _text(3 * MIB))
    path = tmp_path / "cut.gz"
    path.write_bytes(blob[: len(blob) // 2])
    code, records, err, _, _ = _measured(str(path))
    assert code == 1 and [r["secret"] for r in records] == [token] and "unreadable" in err


def _rules() -> list[Rule]:
    return load_rules()
