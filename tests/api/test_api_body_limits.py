"""Request bodies: the caller is authenticated before a byte is read, and bodies are capped (413).

The ASGI-level tests drive the app with a ``receive`` that counts what was
pulled, so "before the body is read" is observed, not inferred. The last test
streams 400 MB into a real ``keyguard serve`` and watches its peak RSS.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.conftest import make_token

from keyguard.api.app import create_app
from keyguard.api.gate import DEFAULT_MAX_BODY, load_max_body
from keyguard.config import Settings
from keyguard.errors import UsageError

KEYGUARD = str(Path(sys.executable).with_name("keyguard"))
MiB = 1024 * 1024


class Body:
    """An ASGI ``receive`` handing out ``chunks`` chunks of ``size`` bytes, counting what was read."""

    def __init__(self, chunks: int, size: int = 64 * 1024) -> None:
        self.left = chunks
        self.size = size
        self.read = 0

    async def __call__(self) -> dict[str, Any]:
        if self.left == 0:
            return {"type": "http.disconnect"}
        self.left -= 1
        self.read += self.size
        return {"type": "http.request", "body": b"x" * self.size, "more_body": self.left > 0}


def _call(app: Any, path: str, headers: list[tuple[bytes, bytes]], receive: Body) -> tuple[int, dict[str, Any]]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("192.0.2.5", 5000),
        "server": ("127.0.0.1", 8787),
    }
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


def _app(vault: Any, tmp_path: Path, max_body: int | None = None) -> Any:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    if max_body is not None:
        (home / "keyguard.toml").write_text(f"[api]\nmax_body = {max_body}\n")
    return create_app(Settings(home=home, database_url=str(vault.engine.url)), vault=vault, watch=False)


def test_no_token_answers_401_before_the_body_is_read(vault, tmp_path, events) -> None:  # type: ignore[no-untyped-def]
    app = _app(vault, tmp_path)
    for headers in ([], [(b"authorization", b"Bearer kgt_forged")]):
        body = Body(chunks=6400)  # 400 MB on offer
        status, doc = _call(app, "/v1/keys/pay/encrypt", [*headers, (b"content-length", b"419430400")], body)
        assert status == 401 and doc["error"] == "unauthenticated"
        assert body.read == 0
    assert [e["reason"] for e in events(op="auth", result="denied")] == ["no bearer token", "invalid or expired token"]


def test_declared_and_chunked_bodies_over_the_cap_answer_413(vault, admin, tmp_path, events) -> None:  # type: ignore[no-untyped-def]
    vault.create_key(admin, "pay", "encrypt")
    token = make_token(vault, admin, "svc", "service", ["pay:encrypt"])
    app = _app(vault, tmp_path, max_body=1 * MiB)
    bearer = (b"authorization", f"Bearer {token}".encode())

    declared = Body(chunks=100)
    status, doc = _call(
        app, "/v1/keys/pay/encrypt", [bearer, (b"content-length", str(100 * 64 * 1024).encode())], declared
    )
    assert status == 413 and doc["error"] == "too_large" and "1048576 bytes" in doc["reason"]
    assert declared.read == 0

    chunked = Body(chunks=6400)  # no Content-Length: read up to the cap, then stop
    status, doc = _call(app, "/v1/keys/pay/encrypt", [bearer, (b"transfer-encoding", b"chunked")], chunked)
    assert status == 413 and doc["error"] == "too_large"
    assert 1 * MiB < chunked.read <= 1 * MiB + 64 * 1024

    # The FastAPI routes sit behind the same gate.
    routed = Body(chunks=6400)
    status, _doc = _call(app, "/v1/clients", [bearer, (b"transfer-encoding", b"chunked")], routed)
    assert status == 413 and routed.read <= 1 * MiB + 64 * 1024
    assert len(events(actor="svc", op="request", result="denied")) == 3


def test_a_body_under_the_cap_still_works(vault, admin, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    vault.create_key(admin, "pay", "encrypt")
    token = make_token(vault, admin, "svc", "service", ["pay:encrypt,decrypt"])
    with TestClient(_app(vault, tmp_path, max_body=64 * 1024), client=("192.0.2.9", 1)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        small = {"plaintext_b64": base64.b64encode(b"a" * 1000).decode()}
        for _ in range(2):  # cold (route) then warm (fast lane)
            assert client.post("/v1/keys/pay/encrypt", json=small, headers=headers).status_code == 200
        big = {"plaintext_b64": base64.b64encode(b"a" * 60_000).decode()}
        r = client.post("/v1/keys/pay/encrypt", json=big, headers=headers)
        assert r.status_code == 413 and r.json()["error"] == "too_large"


def test_max_body_configuration(tmp_path: Path) -> None:
    config = tmp_path / "keyguard.toml"
    assert load_max_body(config) == DEFAULT_MAX_BODY == 32 * MiB
    config.write_text("[api]\nmax_body = 2048\n")
    assert load_max_body(config) == 2048
    for bad in ('"big"', "12", "true"):
        config.write_text(f"[api]\nmax_body = {bad}\n")
        with pytest.raises(UsageError):
            load_max_body(config)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _stream(port: int, token: str | None, total: int) -> tuple[int, bytes]:
    """Send a chunked body of up to ``total`` bytes; (bytes sent, what the server answered)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = "POST /v1/keys/pay/encrypt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    sock.sendall((head + "\r\n").encode())
    chunk = b"100000\r\n" + b"A" * MiB + b"\r\n"
    sent = 0
    try:
        while sent < total:
            sock.sendall(chunk)
            sent += MiB
        sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server answered and closed while we were still sending
    try:
        answer = sock.recv(65536)
    except OSError:
        answer = b""
    sock.close()
    return sent, answer


def test_serve_stays_bounded_while_400_mb_are_streamed(tmp_path: Path) -> None:
    env = {**os.environ, "KEYGUARD_HOME": str(tmp_path / "home"), "KEYGUARD_KEYFILE": str(tmp_path / "root.key")}
    env.pop("KEYGUARD_DATABASE_URL", None)
    env.pop("KEYGUARD_TOKEN", None)
    run = lambda *a: subprocess.run([KEYGUARD, *a], env=env, capture_output=True, text=True, timeout=60, check=True)  # noqa: E731
    run("init", "--root", "keyfile")
    run("key", "create", "pay")
    run("client", "create", "app", "--role", "service", "--grant", "pay:encrypt")
    token = json.loads(run("client", "token", "app", "--json").stdout)["token"]
    port = _free_port()
    proc = subprocess.Popen(
        [KEYGUARD, "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        before = _peak_rss(proc.pid)
        sent, answer = _stream(port, None, 400 * MiB)
        assert answer.startswith(b"HTTP/1.1 401") and sent < 400 * MiB, (sent, answer[:80])
        sent, answer = _stream(port, token, 400 * MiB)
        assert sent < 400 * MiB and (answer == b"" or answer.startswith(b"HTTP/1.1 413")), (sent, answer[:80])
        peak = _peak_rss(proc.pid)
        print(f"peak RSS {before / MiB:.0f} -> {peak / MiB:.0f} MiB, sent {sent / MiB:.0f} MiB")
        assert peak - before < 150 * MiB, (before, peak)
        ok = httpx.post(
            f"http://127.0.0.1:{port}/v1/keys/pay/encrypt",
            json={"plaintext_b64": "aGk="},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert ok.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
