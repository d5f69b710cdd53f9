"""Each response leaves in one write; a token missing from the cache is looked up once however many wait."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from keyguard.api.auth import TokenCache
from keyguard.api.wire import CoalescingTransport
from keyguard.errors import PermissionDeniedError
from keyguard.vault.principal import Principal


class _Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else None


def test_writes_of_one_loop_turn_leave_together() -> None:
    async def scenario() -> _Recorder:
        real = _Recorder()
        wire = CoalescingTransport(real, asyncio.get_running_loop())
        wire.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        wire.write(b"{}")
        assert real.writes == [] and wire.get_write_buffer_size() == 40
        await asyncio.sleep(0)
        assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        wire.write(b"last")
        wire.close()  # what is kept goes out before the connection closes
        assert real.writes[-1] == b"last" and real.closed
        await asyncio.sleep(0)
        assert len(real.writes) == 2  # the cancelled flush wrote nothing twice
        assert wire.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the real transport's
        return real

    asyncio.run(scenario())


class _SlowClients:
    """A client service whose lookup blocks until released, counting lookups."""

    def __init__(self, refuse: bool = False) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.refuse = refuse

    def authenticate(self, token: str) -> Principal:
        self.calls += 1
        self.release.wait(5)
        if self.refuse:
            raise PermissionDeniedError("invalid or expired token")
        return Principal(name="svc", role="service")


@pytest.mark.parametrize("refuse", [False, True])
def test_concurrent_misses_share_one_lookup(refuse: bool) -> None:
    clients = _SlowClients(refuse)
    cache = TokenCache(clients, ttl=60)  # type: ignore[arg-type]

    async def scenario() -> list[Any]:
        calls = [cache.authenticate_shared("kgt_x", f"10.0.0.{n}", "ua", f"r{n}") for n in range(8)]
        tasks = [asyncio.ensure_future(call) for call in calls]
        await asyncio.sleep(0.05)
        clients.release.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(scenario())
    assert clients.calls == 1
    if refuse:
        assert all(isinstance(r, PermissionDeniedError) for r in results)
        assert cache.authenticate_cached("kgt_x", None, None, None) is None
    else:
        assert [(p.source_ip, p.request_id) for p in results] == [(f"10.0.0.{n}", f"r{n}") for n in range(8)]
        assert cache.authenticate_cached("kgt_x", None, None, "again") is not None


def test_a_cancelled_first_lookup_does_not_fail_the_others() -> None:
    clients = _SlowClients()
    cache = TokenCache(clients, ttl=60)  # type: ignore[arg-type]

    async def scenario() -> Principal:
        first = asyncio.ensure_future(cache.authenticate_shared("kgt_x", None, None, "r1"))
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(cache.authenticate_shared("kgt_x", None, None, "r2"))
        await asyncio.sleep(0.01)
        first.cancel()
        await asyncio.sleep(0.01)
        clients.release.set()
        return await second

    assert asyncio.run(scenario()).request_id == "r2"
