"""``keyguard serve`` end to end: a real uvicorn process on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

KEYGUARD = str(Path(sys.executable).with_name("keyguard"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keyguard(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KEYGUARD, *args], env=env, capture_output=True, text=True, timeout=60)


def test_serve_answers_and_refuses_a_missing_vault(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KEYGUARD_HOME": str(tmp_path / "home"),
        "KEYGUARD_KEYFILE": str(tmp_path / "root.key"),
    }
    env.pop("KEYGUARD_DATABASE_URL", None)
    missing = _keyguard("serve", "--port", str(_free_port()), env=env)
    assert missing.returncode == 4, missing.stderr
    assert missing.stderr.startswith("keyguard: error: the vault is not initialised")

    assert _keyguard("init", "--root", "keyfile", "--json", env=env).returncode == 0
    both = _keyguard("serve", "--workers", "2", "--metrics-listen", "127.0.0.1:9464", env=env)
    assert both.returncode == 2 and "--metrics-listen" in both.stderr
    port, metrics_port = _free_port(), _free_port()
    proc = subprocess.Popen(
        [KEYGUARD, "serve", "--port", str(port), "--metrics-listen", f"127.0.0.1:{metrics_port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert r.status_code == 200 and r.json()["status"] == "ok"
        assert "x-request-id" in r.headers
        assert httpx.get(f"http://127.0.0.1:{port}/v1/keys").status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 401
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        assert scraped.status_code == 200 and 'keyguard_http_requests_total{method="GET"' in scraped.text
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_uses_every_core_by_default() -> None:
    from keyguard.cli.serve import default_workers

    cores = len(os.sched_getaffinity(0))
    assert default_workers("keyfile", {}) == cores
    assert default_workers("passphrase", {"KEYGUARD_PASSPHRASE": "x"}) == cores
    assert default_workers("passphrase", {}) == 1  # a typed passphrase cannot be asked for again by each worker
