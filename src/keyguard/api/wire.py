"""uvicorn's httptools protocol, with each response leaving in one ``write`` (one system call, one segment).

uvicorn writes a response's status line and headers when the app sends
``http.response.start`` and its body on ``http.response.body``: two ``send``
system calls and two TCP segments for every small JSON answer, and a second
wake-up of the client to read it. Here the connection's transport keeps what is
written during one turn of the event loop and hands it over in one piece at the
end of that turn (or at once, before the connection closes). Nothing else of
the protocol changes: parsing, keep-alive, flow control and errors are uvicorn's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Wrap the connection's transport, then let uvicorn set the connection up."""
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
