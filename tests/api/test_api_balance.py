"""Connections spread over ``serve``'s workers: a connection passed on keeps working, and 16 at once split evenly."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from keyguard.api.balance import Balancer

KEYGUARD = str(Path(sys.executable).with_name("keyguard"))


def _worker(folder: Path) -> tuple[Balancer, asyncio.AbstractEventLoop, list[socket.socket]]:
    """A balancer on a loop of its own thread, keeping the connections it is handed."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    got: list[socket.socket] = []
    made = asyncio.run_coroutine_threadsafe(_make(folder, loop, got), loop).result(5)
    return made, loop, got


async def _make(folder: Path, loop: asyncio.AbstractEventLoop, got: list[socket.socket]) -> Balancer:
    balancer = Balancer(folder, loop)
    balancer.receive_with(got.append)
    return balancer


def test_a_loaded_worker_passes_a_connection_that_keeps_working(tmp_path: Path) -> None:
    busy, busy_loop, _ = _worker(tmp_path)
    idle, idle_loop, received = _worker(tmp_path)
    assert busy.slot != idle.slot
    client, server = socket.socketpair()
    try:
        assert not busy.pass_on(server)  # 0 against 0: kept
        busy.opened()
        busy.opened()
        assert busy.pass_on(server)  # 2 against 0: the idle worker takes it
        deadline = time.monotonic() + 5
        while not received:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        server.close()  # the busy worker's copy: the connection lives on in the other
        client.sendall(b"ping")
        assert received[0].recv(4) == b"ping"
        received[0].sendall(b"pong")
        assert client.recv(4) == b"pong"
        # what was just passed on counts for the receiver until it counts it itself: no burst to one peer
        more = [socket.socketpair() for _ in range(2)]
        assert [busy.pass_on(pair[1]) for pair in more] == [True, False]  # 2 against 1, then 2 against 2
        received.extend(pair[0] for pair in more)
    finally:
        client.close()
        for sock in received:
            sock.close()
        busy_loop.call_soon_threadsafe(busy_loop.stop)
        idle_loop.call_soon_threadsafe(idle_loop.stop)


def test_a_worker_without_peers_keeps_its_connections(tmp_path: Path) -> None:
    alone, loop, _ = _worker(tmp_path)
    a, b = socket.socketpair()
    try:
        for _ in range(5):
            alone.opened()
        assert not alone.pass_on(b)
        alone.closed()
        assert alone.counts[alone.slot] == 4
    finally:
        a.close()
        b.close()
        loop.call_soon_threadsafe(loop.stop)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _held(folder: Path) -> list[int]:
    """The two workers' published connection counts, smaller first."""
    counts = memoryview((folder / "counts").read_bytes()).cast("i")
    return sorted(counts[i] for i in range(2))


def _get(conn: socket.socket) -> int:
    """One keep-alive ``GET /healthz`` on a raw connection; its status."""
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: kg\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += conn.recv(4096)
    top, _, rest = head.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in top.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(rest) < length:
        rest += conn.recv(4096)
    return int(top.split(b" ")[1])


@pytest.mark.slow
def test_sixteen_connections_at_once_split_evenly_over_two_workers(tmp_path: Path) -> None:
    env = {**os.environ, "KEYGUARD_HOME": str(tmp_path / "home"), "KEYGUARD_KEYFILE": str(tmp_path / "root.key")}
    env.pop("KEYGUARD_DATABASE_URL", None)
    scratch = Path(tempfile.mkdtemp(dir="/tmp"))  # where serve makes its balance folder: short, for AF_UNIX
    env["TMPDIR"] = str(scratch)
    subprocess.run([KEYGUARD, "init", "--root", "keyfile", "--json"], env=env, check=True, capture_output=True)
    port = _free_port()
    serve = [KEYGUARD, "serve", "--port", str(port), "--workers", "2"]
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(serve, env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        # two workers importing the app on a machine busy with the rest of the suite start slowly
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(url, timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.2)
        # every worker has accepted a connection once (its socket appears then)
        folder = next(scratch.glob("kg-balance-*"))
        while len(list(folder.glob("slot-*.sock"))) < 2:
            with httpx.Client() as warm:
                for _ in range(8):
                    warm.get(url)
            assert time.monotonic() < deadline
        time.sleep(1.2)  # the peers are looked for again once a second
        # 16 connections at once: they wait in the listen queue together, where one worker
        # would accept them all in one go
        conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(16)]
        try:
            assert [_get(c) for c in conns] == [200] * 16
            held = _held(folder)
            settle = time.monotonic() + 15
            while sum(held) != 16 and time.monotonic() < settle:  # the warm-up's closes are seen late
                time.sleep(0.1)
                held = _held(folder)
            assert sum(held) == 16 and held[1] - held[0] <= 2, held
            assert [_get(c) for c in conns] == [200] * 16  # the passed ones keep working
        finally:
            for c in conns:
                c.close()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert not folder.exists()
    scratch.rmdir()


def test_a_folder_too_long_for_a_unix_socket_leaves_the_worker_unbalanced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyguard.api import balance

    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    monkeypatch.setenv(balance.ENV, str(deep))
    monkeypatch.setattr(balance, "_balancer", None)
    monkeypatch.setattr(balance, "_failed", 0)
    loop = asyncio.new_event_loop()
    try:
        assert balance.for_this_worker(loop) is None  # served here, never an error on the connection
        assert balance.for_this_worker(loop) is None  # and not tried again
        assert not list(deep.glob("slot-*.lock"))  # no slot taken
    finally:
        loop.close()
