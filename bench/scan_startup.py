"""Scanner start-up: ``keyguard scan`` on a tiny directory beside betterleaks (issue 14:
under 0.3 s wall), and what the scan imports (``python -X importtime``).

    .venv/bin/python bench/scan_startup.py [--repeat 9]

KEYGUARD_BIN names the keyguard to time (a wrapper running a work tree's sources, say);
the import listing runs ``python -m keyguard`` with this interpreter and sys.path.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scan_common import KEYGUARD, WORK, ensure_competitors, measure  # noqa: E402

HEAVY = ("typer", "click", "rich", "pydantic", "sqlalchemy", "fastapi", "cryptography", "keyguard.vault")


def tiny_dir() -> Path:
    """A directory of three small clean files, outside any git work tree."""
    folder = Path(tempfile.gettempdir()) / "keyguard-startup-tiny"  # outside any work tree
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text("import os\n\nDEBUG = os.environ.get('DEBUG') == '1'\n")
    (folder / "README.md").write_text("# tiny\n\nNothing to see.\n")
    (folder / "config.yaml").write_text("name: tiny\nreplicas: 2\n")
    return folder


def imports(folder: Path) -> tuple[int, float, list[str]]:
    """(modules imported, their total import time in s, heavy packages among them)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "keyguard", "scan", "-f", "json", str(folder)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    names: list[str] = []
    total_us = 0
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, _cumulative, name = line.split(":", 1)[1].split("|")
        names.append(name.strip())
        total_us += int(self_us)
    heavy = sorted({h for h in HEAVY for n in names if n == h or n.startswith(h + ".")})
    return len(names), total_us / 1e6, heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=9, help="runs per tool (min 5)")
    args = parser.parse_args()
    repeat = max(args.repeat, 5)
    bindir = ensure_competitors()
    folder = tiny_dir()
    WORK.mkdir(parents=True, exist_ok=True)  # git-ignored scratch space; absent on a fresh clone
    out = WORK / "startup-out.json"
    cmds = {
        "keyguard (table)": [str(KEYGUARD), "scan", str(folder)],
        "keyguard (json)": [str(KEYGUARD), "scan", "-f", "json", "-o", str(out), str(folder)],
        "betterleaks": [str(bindir / "betterleaks"), "fs", "--no-banner", "-l", "error", "-o", str(out), str(folder)],
    }
    for cmd in cmds.values():
        measure(cmd, cwd=WORK)  # warm: caches (rule validation, Hyperscan database), page cache
    walls: dict[str, list[float]] = {name: [] for name in cmds}
    cpus: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(repeat):  # interleaved, so that load on the shared machine hits both
        for name, cmd in cmds.items():
            result = measure(cmd, cwd=WORK)
            assert result.returncode in (0, 1), (name, result.returncode)
            walls[name].append(result.wall)
            cpus[name].append(result.cpu)
    print(f"tiny directory: {folder} ({len(list(folder.iterdir()))} files); {repeat} runs each, wall s")
    print(f"{'tool':<20}{'min':>8}{'median':>8}{'max':>8}{'cpu s (median)':>16}")
    for name, values in walls.items():
        cpu = statistics.median(cpus[name])
        print(f"{name:<20}{min(values):>8.3f}{statistics.median(values):>8.3f}{max(values):>8.3f}{cpu:>16.3f}")
    print(f"load average now: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    count, seconds, heavy = imports(folder)
    print(f"\npython -X importtime -m keyguard scan: {count} modules, {seconds:.3f} s of import time (self)")
    print(f"heavy packages imported: {', '.join(heavy) if heavy else 'none'}")


if __name__ == "__main__":
    main()
