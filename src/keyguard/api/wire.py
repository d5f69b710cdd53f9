"""uvicorn's httptools protocol, with each response leaving in one ``write`` (one system call, one segment).

uvicorn writes a response's status line and headers when the app sends
``http.response.start`` and its body on ``http.response.body``: two ``send``
system calls and two TCP segments for every small JSON answer, and a second
wake-up of the client to read it. Here the connection's transport keeps what is
written during one turn of the event loop and hands it over in one piece at the
end of that turn (or at once, before the connection closes). Nothing else of
the protocol changes: parsing, keep-alive, flow control and errors are uvicorn's.

With several workers, a new connection may first be passed on to a less loaded
worker (:mod:`keyguard.api.balance`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from keyguard.api import balance

_log = logging.getLogger("keyguard.api")


class CoalescingTransport:
    """A transport whose writes of one loop turn go out together."""

    __slots__ = ("_flush_handle", "_loop", "_pending", "_transport")

    def __init__(self, transport: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        """Keep ``data`` for the end of this loop turn."""
        self._pending.append(data)
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Hand what was kept to the real transport in one write."""
        self._flush_handle = None
        pending = self._pending
        if not pending:
            return
        self._pending = []
        self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        """Write what is kept, then close (the real transport sends it before closing)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self.flush()
        self._transport.close()

    def get_write_buffer_size(self) -> int:
        """Bytes not yet sent, kept ones included."""
        kept = sum(len(chunk) for chunk in self._pending)
        return int(self._transport.get_write_buffer_size()) + kept

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` over a :class:`CoalescingTransport` (``uvicorn.run(http=…)``)."""

    placed = False  # a connection another worker passed on: served here, never passed on again
    _handed = False
    _counted = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Pass the connection on to a less loaded worker, or wrap its transport and let uvicorn set it up."""
        balancer = balance.for_this_worker(self.loop)
        if balancer is not None:
            if not self.placed:
                if not balancer.receiving:  # one receiver per worker: its tasks must outlive any connection
                    balancer.receive_with(_Receiver(self.config, self.server_state, self.app_state, self.loop))
                if balancer.pass_on(transport.get_extra_info("socket")):
                    self._handed = True
                    transport.close()  # the other worker holds its own descriptor of the connection
                    return
            balancer.opened()
            self._counted = True
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        """uvicorn's bookkeeping, and one connection fewer in this worker's published count."""
        if self._handed:
            return
        if self._counted:
            balancer = balance.for_this_worker(self.loop)
            if balancer is not None:
                balancer.closed()
        super().connection_lost(exc)


class _Receiver:
    """Serves connections passed on by other workers, with this worker's uvicorn state."""

    def __init__(
        self, config: Config, server_state: ServerState, app_state: dict[str, Any], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._args = (config, server_state, app_state)
        self._loop = loop
        self._tasks: set[asyncio.Task[Any]] = set()

    def _protocol(self) -> CoalescingHttpToolsProtocol:
        protocol = CoalescingHttpToolsProtocol(*self._args, _loop=self._loop)
        protocol.placed = True
        return protocol

    def __call__(self, connection: socket.socket) -> None:
        task = self._loop.create_task(self._adopt(connection))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _adopt(self, connection: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol, connection)
        except OSError as exc:  # the client went away meanwhile
            _log.debug("a connection passed on could not be served: %s", type(exc).__name__)
            connection.close()
