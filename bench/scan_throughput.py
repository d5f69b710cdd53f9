"""Scanner throughput: keyguard vs betterleaks, Kingfisher and detect-secrets on a real
code base (CPython's standard library replayed from 2.7 to 3.13 as git history).

MB/s = bytes of ``git log -p --all`` / wall time, for every tool and both targets (working
tree and full history), so all figures share one denominator. Peak RSS is summed over
each tool's process tree. Competitors run from bench/.venv-scan, validation off.

    .venv/bin/python bench/scan_throughput.py [--skip "TOOL:TARGET" ...] [--ds-sample 0.1]
    .venv/bin/python bench/scan_throughput.py --repo PATH [--repo PATH ...] [--repeat 5]

``--repo`` times the full history of existing repositories (bare or not; flask- and
pip-sized ones in issue 14) for keyguard, betterleaks and Kingfisher in the same run, with
min / median / max wall time, peak RSS, and keyguard's speed relative to betterleaks.

detect-secrets runs at ~0.1-0.3 MB/s; ``--ds-sample F`` times it on the first fraction F of
the ``git log -p --all`` text (MB/s is then sample bytes / wall), and ``--skip`` leaves out
a (tool, target) pair, to spare the shared CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scan_common import (  # noqa: E402
    KEYGUARD,
    WORK,
    Measure,
    build_stdlib_repo,
    ensure_competitors,
    git_log_bytes,
    measure,
)


def count_findings(tool: str, path: Path) -> int:
    try:
        document = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return -1
    if tool.startswith("keyguard"):
        return len(document)
    if tool == "detect-secrets":
        return sum(len(v) for v in document["results"].values())
    if isinstance(document, dict):
        return len(document.get("findings") or [])
    return len(document or [])


def commands(bindir: Path, repo: Path, patch: Path, out: Path) -> dict[tuple[str, str], list[str]]:
    kf = [str(bindir / "kingfisher"), "scan", "--no-validate", "--no-update-check", "-q", "-f", "json", "-o", str(out)]
    bl = [str(bindir / "betterleaks"), "--no-banner", "-l", "error", "-o", str(out)]
    ds = [str(bindir / "detect-secrets"), "scan", "--all-files"]  # run from the target's folder
    kg = [str(KEYGUARD), "scan", "-f", "json", "-o", str(out)]
    return {
        ("keyguard", "working tree"): [*kg, str(repo)],
        ("keyguard", "history"): [*kg, "--git", str(repo)],
        ("betterleaks", "working tree"): [bl[0], "fs", *bl[1:], str(repo)],
        ("betterleaks", "history"): [bl[0], "git", *bl[1:], str(repo)],
        ("kingfisher", "working tree"): [*kf, "--git-history", "none", str(repo)],
        ("kingfisher", "history"): [*kf, "--git-history", "full", str(repo)],
        ("detect-secrets", "working tree"): [*ds, "."],
        ("detect-secrets", "history"): [*ds, patch.name],
    }


def history_runs(bindir: Path, repos: list[Path], repeat: int, tools: tuple[str, ...]) -> None:
    """Full-history throughput on existing repositories, betterleaks as the anchor."""
    out = WORK / "scan-out.json"
    for repo in repos:
        log_bytes = git_log_bytes(repo)
        print(f"\nrepository: {repo} — git log -p --all = {log_bytes / 1e6:.1f} MB")
        header = f"{'tool':<14}{'min s':>8}{'median':>8}{'max s':>8}{'MB/s':>8}{'peak MB':>9}{'findings':>10}"
        print(header + f"{'x betterleaks':>15}{'cpu s (med)':>13}{'x bl (cpu)':>12}")
        cmds = {
            tool: cmd
            for (tool, target), cmd in commands(bindir, repo, repo, out).items()
            if target == "history" and tool in tools
        }
        medians: dict[str, float] = {}
        cpus: dict[str, float] = {}
        runs: dict[str, list[Measure]] = {tool: [] for tool in cmds}
        found: dict[str, int] = {}
        for _ in range(repeat):  # interleaved: a burst of load on the shared machine hits every tool
            for tool, cmd in cmds.items():
                if out.exists():
                    out.unlink()
                runs[tool].append(measure(cmd, cwd=WORK))
                found[tool] = count_findings(tool, out)
        for tool, done in runs.items():
            medians[tool] = statistics.median(m.wall for m in done)
            cpus[tool] = statistics.median(m.cpu for m in done)
        for tool, done in runs.items():
            walls = sorted(m.wall for m in done)
            median = medians[tool]
            peak = max(m.peak_rss_mb for m in done)
            print(
                f"{tool:<14}{walls[0]:>8.2f}{median:>8.2f}{walls[-1]:>8.2f}{log_bytes / 1e6 / median:>8.1f}"
                f"{peak:>9.0f}{found[tool]:>10}{medians['betterleaks'] / median:>14.2f}x"
                f"{cpus[tool]:>13.2f}{cpus['betterleaks'] / max(cpus[tool], 1e-9):>11.2f}x",
                flush=True,
            )
    print(f"\n{repeat} runs per tool, interleaved; peak MB = the largest (process tree); cpu = user+sys of the tree.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip", action="append", default=[], help="TOOL:TARGET to leave out")
    parser.add_argument("--ds-sample", type=float, default=1.0, help="detect-secrets history sample")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (median wall time)")
    parser.add_argument("--repo", action="append", type=Path, default=[], help="existing repository to time")
    parser.add_argument(
        "--tools", default="keyguard,betterleaks,kingfisher", help="with --repo: comma list (with betterleaks)"
    )
    args = parser.parse_args()
    bindir = ensure_competitors()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.repo:
        history_runs(bindir, args.repo, args.repeat, tuple(args.tools.split(",")))
        return
    repo = build_stdlib_repo(WORK / "stdlib-history")
    log_bytes = git_log_bytes(repo)
    # outside any work tree: detect-secrets skips files that git ignores
    outside = Path(tempfile.gettempdir()) / "keyguard-scan-throughput"
    outside.mkdir(exist_ok=True)
    patch = outside / "stdlib-history.patch"
    with patch.open("wb") as handle:
        log = subprocess.run(
            ["git", "-C", str(repo), "log", "-p", "--all", "--no-color"], capture_output=True, check=True
        ).stdout
        sample = log[: int(len(log) * args.ds_sample)]
        handle.write(sample)
    commits = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--all", "--count"], capture_output=True, text=True, check=True
    ).stdout.strip()
    out = WORK / "scan-out.json"
    warm = WORK / "warmup"
    warm.mkdir(exist_ok=True)
    (warm / "a.txt").write_text("nothing\n")
    for (_tool, target), cmd in commands(bindir, warm, warm / "a.txt", out).items():
        if target == "working tree":
            measure(cmd, cwd=warm)  # warm caches (rule databases, imports)
    print(
        f"repository: CPython stdlib 2.7→3.13 replayed, {commits} commits, git log -p --all = {log_bytes / 1e6:.1f} MB"
    )
    print(f"{'tool':<16}{'target':<14}{'wall s':>8}{'MB/s':>9}{'peak MB':>9}{'findings':>10}")
    for (tool, target), cmd in commands(bindir, repo, patch, out).items():
        if f"{tool}:{target}" in args.skip:
            print(f"{tool:<16}{target:<14}{'skipped':>8}")
            continue
        if out.exists():
            out.unlink()
        denominator = log_bytes
        if tool == "detect-secrets":
            cwd = repo if target == "working tree" else outside
            result = measure(cmd, cwd=cwd, stdout_path=out)  # minutes per run: once
            if target == "history":
                denominator = len(sample)
        else:
            runs = sorted((measure(cmd, cwd=WORK) for _ in range(args.repeat)), key=lambda m: m.wall)
            result = runs[len(runs) // 2]
            result.peak_rss_mb = max(m.peak_rss_mb for m in runs)
        found = count_findings(tool, out)
        note = f"  (first {len(sample) / 1e6:.1f} MB)" if denominator != log_bytes else ""
        print(
            f"{tool:<16}{target:<14}{result.wall:>8.2f}{denominator / 1e6 / result.wall:>9.1f}"
            f"{result.peak_rss_mb:>9.0f}{found:>10}{note}",
            flush=True,
        )
    print(f"wall s = median of {args.repeat} runs (detect-secrets: 1); peak MB = the largest.")
    print("detect-secrets has no history mode: it scans the `git log -p --all` text itself.")


if __name__ == "__main__":
    main()
