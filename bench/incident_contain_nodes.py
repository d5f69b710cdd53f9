"""Figure: containment across nodes, from the compromise being committed on node 1 to node 2 refusing.

Two `keyguard serve` nodes (default settings) share one PostgreSQL database. Each trial rotates
the key (a fresh version), warms node 2 with decrypts of that version, then, while pollers ask
node 2 to decrypt as fast as they can, marks the version compromised through node 1's API. The
figure is the time from node 1's answer (the change is committed) to the first 403 from node 2.
The CLI path is timed too: `keyguard key compromise` started as an operator would (Python start-up
included) to node 2's first refusal. Anchor: the seed's SLA of one hour.

    python bench/incident_contain_nodes.py [--trials 20] [--cli-trials 5]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
POLLERS = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kg(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "keyguard", *args], env=env, capture_output=True, text=True, check=True)
    return out.stdout


def wait_up(client: httpx.Client) -> None:
    for _ in range(400):
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit("a node did not come up")


def trial(node1: httpx.Client, node2: list[httpx.Client], compromise: Callable[[int], float]) -> float:
    """One containment: seconds from the change's commit (``compromise`` returns when) to node 2's 403."""
    version = int(node1.post("/v1/keys/pay/rotate").json()["versions"][-1]["version"])
    ciphertext = node1.post("/v1/keys/pay/encrypt", json={"plaintext_b64": "aGk="}).json()["ciphertext"]
    body = {"ciphertext": ciphertext}
    for client in node2:
        for _ in range(20):  # every worker has the version cached
            assert client.post("/v1/keys/pay/decrypt", json=body).status_code == 200
    refused: list[float] = []
    go = threading.Event()
    stop = threading.Event()

    def poll(client: httpx.Client) -> None:
        go.wait()
        while not stop.is_set():
            status = client.post("/v1/keys/pay/decrypt", json=body).status_code
            if status == 403:
                refused.append(time.perf_counter())
                return
            assert status == 200, status

    threads = [threading.Thread(target=poll, args=(c,)) for c in node2]
    for t in threads:
        t.start()
    go.set()
    time.sleep(0.02)  # the pollers are in their stride
    committed = compromise(version)
    deadline = time.perf_counter() + 10
    while not refused and time.perf_counter() < deadline:
        time.sleep(0.0005)
    stop.set()
    for t in threads:
        t.join()
    if not refused:
        raise SystemExit(f"node 2 never refused version {version}")
    refusals.clear()
    for _ in range(30):  # the same refusal once every node knows: what one refused request costs
        started = time.perf_counter()
        assert node2[0].post("/v1/keys/pay/decrypt", json=body).status_code == 403
        refusals.append(time.perf_counter() - started)
    return min(refused) - committed


refusals: list[float] = []


def commit_floor(url: str, n: int = 50) -> list[float]:
    """Seconds per durable commit of one row here: node 2's refusal is audited, and so waits for one."""
    times = []
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE bench_probe (x int)")
        conn.commit()
        for _ in range(n):
            started = time.perf_counter()
            conn.execute("INSERT INTO bench_probe VALUES (1)")
            conn.commit()
            times.append(time.perf_counter() - started)
        conn.execute("DROP TABLE bench_probe")
        conn.commit()
    return times


def summary(label: str, values: list[float], anchor: bool = True) -> str:
    ms = [v * 1000 for v in values]
    text = f"{label}: min {min(ms):.1f} / median {statistics.median(ms):.1f} / max {max(ms):.1f} ms"
    if not anchor:
        return text
    return f"{text} over {len(ms)} trials; seed anchor 3,600,000 ms (1 h): {3_600_000 / max(ms):,.0f}x the worst"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--cli-trials", type=int, default=5)
    args = parser.parse_args()
    name = f"kg_bench_nodes_{os.getpid()}"
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    home = Path(tempfile.mkdtemp(prefix="kg-bench-nodes-"))
    env = dict(
        os.environ,
        KEYGUARD_HOME=str(home),
        KEYGUARD_DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
    )
    env.pop("KEYGUARD_TOKEN", None)
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        kg(env, "init")
        kg(env, "key", "create", "pay", "--tier", "high")
        kg(env, "client", "create", "app", "--role", "service", "--grant", "pay:encrypt,decrypt")
        kg(env, "client", "create", "ops", "--role", "admin")
        token = json.loads(kg(env, "client", "token", "app", "--json"))["token"]
        admin = json.loads(kg(env, "client", "token", "ops", "--json"))["token"]
        ports = [free_port(), free_port()]
        for port in ports:
            cmd = [sys.executable, "-m", "keyguard", "serve", "--port", str(port)]
            nodes.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        node1 = httpx.Client(base_url=f"http://127.0.0.1:{ports[0]}", headers={"Authorization": f"Bearer {admin}"})
        node2 = [
            httpx.Client(base_url=f"http://127.0.0.1:{ports[1]}", headers={"Authorization": f"Bearer {token}"})
            for _ in range(POLLERS)
        ]
        wait_up(node1)
        wait_up(node2[0])

        def via_api(version: int) -> float:
            r = node1.post(f"/v1/keys/pay/versions/{version}/compromise")
            assert r.status_code == 200, r.text
            return time.perf_counter()

        def via_cli(version: int) -> float:
            started = time.perf_counter()
            out = subprocess.Popen(
                [sys.executable, "-m", "keyguard", "key", "compromise", "pay", "--version", str(version), "--yes"],
                env=env,
                stdout=subprocess.DEVNULL,
            )
            threading.Thread(target=out.wait, daemon=True).start()
            return started

        api = [trial(node1, node2, via_api) for _ in range(args.trials)]
        cli = [trial(node1, node2, via_cli) for _ in range(args.cli_trials)]
        floor = commit_floor(f"postgresql://postgres@127.0.0.1:5432/{name}")
        print("containment across nodes (2 x keyguard serve, default settings, one PostgreSQL)")
        print(summary("  API: node 1's compromise answered -> node 2 refuses", api))
        print(summary("  CLI: `keyguard key compromise` started -> node 2 refuses", cli))
        print(summary("  one refused request to node 2 once it knows (the request's own cost)", refusals, False))
        ms = sorted(f * 1000 for f in floor)
        print(
            f"  floor: one durable PostgreSQL commit (node 2 audits the refusal before answering): "
            f"median {statistics.median(ms):.1f} / max {ms[-1]:.1f} ms"
        )
    finally:
        for node in nodes:
            node.terminate()
            node.wait(10)
        with psycopg.connect(ADMIN, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
