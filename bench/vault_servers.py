"""HTTP encrypt of 4 KiB: ``keyguard serve`` (uvicorn) beside the same app under granian, in the same run.

Both serve the app of ``keyguard serve`` with one worker per core over their own
SQLite vault; the rounds alternate between them. Besides req/s and p99 it prints
the CPU each server's process tree spent per request (user + system, from
/proc), the figure that decides on a shared 2-core machine where wrk and the
server compete for the same cores.

Needs wrk (apt-get install -y wrk) and granian (pip install granian).

    .venv/bin/python bench/vault_servers.py [--rounds 5] [--duration 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vault_http  # noqa: E402 - the sibling bench's servers and wrk runner


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and all its descendants."""
    pids, seen = [pid], 0
    while seen < len(pids):
        children = subprocess.run(["pgrep", "-P", str(pids[seen])], capture_output=True, text=True).stdout
        pids += [int(p) for p in children.split()]
        seen += 1
    total = 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    args.workers = None
    granian = Path(sys.executable).with_name("granian")
    if shutil.which("wrk") is None or not granian.exists():
        sys.exit("needs wrk (apt-get install -y wrk) and granian (pip install granian)")
    workers = str(len(os.sched_getaffinity(0)))
    commands = {
        "uvicorn": None,  # keyguard serve as it is
        "granian": [
            str(granian),
            "--interface",
            "asgi",
            "--factory",
            "--workers",
            workers,
            "--loop",
            "uvloop",
            "--log-level",
            "warning",
            "--no-ws",
            "--port",
            "PORT",
            "keyguard.api.app:app_from_env",
        ],
    }
    started: list[int] = []
    plain_popen = subprocess.Popen

    def popen(cmd: list[str], *rest: Any, **options: Any) -> subprocess.Popen[bytes]:
        """vault_http starts ``keyguard serve``: swap in the command of the side being started."""
        if current is not None and cmd[0].endswith("keyguard"):
            port = cmd[cmd.index("--port") + 1]
            cmd = [port if part == "PORT" else part for part in current]
        proc = plain_popen(cmd, *rest, **options)
        started.append(proc.pid)
        return proc

    current: list[str] | None = None
    sides: dict[str, tuple[str, Path, int]] = {}
    with ExitStack() as stack:
        subprocess.Popen = popen  # type: ignore[misc,assignment]
        try:
            for name, command in commands.items():
                current = command
                url, script, _audited = stack.enter_context(
                    vault_http.keyguard_server(Path(tempfile.mkdtemp(prefix=f"kg-{name}-")), args)
                )
                sides[name] = (url, script, started[-1])
        finally:
            subprocess.Popen = plain_popen  # type: ignore[misc]
        for url, script, _pid in sides.values():
            vault_http.warm_up(url, script, args.connections)
        rows: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
        for n in range(1, args.rounds + 1):
            line = []
            for name, (url, script, pid) in sides.items():
                before = tree_cpu(pid)
                result = vault_http.run_wrk(url, script, args.duration, args.connections)
                result["cpu_us"] = (tree_cpu(pid) - before) / max(result["requests"], 1) * 1e6
                rows[name].append(result)
                line.append(
                    f"{name} {result['rps']:,.0f} req/s p99 {result['p99_ms']:.1f} ms {result['cpu_us']:.0f} µs"
                )
            print(f"round {n}: " + " | ".join(line), flush=True)
    print(f"HTTP encrypt 4 KiB, wrk -t2 -c{args.connections} -d{args.duration}s, {args.rounds} alternating rounds")
    for name, results in rows.items():
        rps = [r["rps"] for r in results]
        cpu = [r["cpu_us"] for r in results]
        p99 = [r["p99_ms"] for r in results]
        print(
            f"{name:<8} req/s min/median/max {min(rps):,.0f} / {statistics.median(rps):,.0f} / {max(rps):,.0f}; "
            f"p99 {min(p99):.1f}–{max(p99):.1f} ms; CPU per request median {statistics.median(cpu):.0f} µs"
        )


if __name__ == "__main__":
    main()
