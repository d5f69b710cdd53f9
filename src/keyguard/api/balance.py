"""Connections spread evenly over ``serve``'s worker processes.

uvicorn's workers accept from one listening socket, and the worker that wakes
first accepts every connection waiting (uvloop accepts until the queue is
empty): a client that opens 16 connections at once often gets 11 on one worker
and 5 on the other, and the busy one then caps the server at one core while the
other idles. Measured on the encrypt bench: 2,288 req/s with an 11/5 split
against 4,877 with 8/8, on the same machine a few seconds apart.

Here each worker publishes how many connections it holds (one int32 slot in a
shared file), and a worker that would hold two more than the least loaded one
passes the new connection on to it before reading a byte of it: the file
descriptor travels over a Unix socket (``SCM_RIGHTS``) and the receiving
worker serves it as if it had accepted it. The client never notices. A worker
that cannot pass a connection on (the peer is gone, its socket is full) keeps it.
A worker takes connections from others only once it has accepted one itself
(its socket appears then, with the uvicorn state it serves them with).
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import logging
import mmap
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

_log = logging.getLogger("keyguard.api")

ENV = "KEYGUARD_BALANCE_DIR"
SLOTS = 64
_PEERS_TTL = 1.0  # seconds between looks for workers that started or stopped
_SUN_PATH = 108  # bytes of a Unix socket's path on Linux, its terminating NUL included
_IN_FLIGHT = 0.05  # seconds a connection passed on is counted here for its receiver, before it counts it itself


class Balancer:
    """This worker's slot, its published connection count and its Unix socket."""

    def __init__(self, folder: Path, loop: asyncio.AbstractEventLoop) -> None:
        self.folder = folder
        self.loop = loop
        if len(os.fsencode(self._socket_path(SLOTS - 1))) >= _SUN_PATH:
            raise ValueError("the balance folder's path is too long for a Unix socket")
        self.slot, self._lock_fd = _claim_slot(folder)
        self._counts_fd = os.open(folder / "counts", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if os.fstat(self._counts_fd).st_size < 4 * SLOTS:
            os.ftruncate(self._counts_fd, 4 * SLOTS)
        self._map = mmap.mmap(self._counts_fd, 4 * SLOTS)
        self.counts = memoryview(self._map).cast("i")
        self._held = 0  # this worker's own count; the shared slot is a copy others read
        self.counts[self.slot] = 0
        self._inbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        path = self._socket_path(self.slot)
        path.unlink(missing_ok=True)
        self._inbox.bind(str(path))
        self._inbox.setblocking(False)
        self._outbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._outbox.setblocking(False)
        self._peers: list[int] = []
        self._sent: dict[int, deque[float]] = {}  # peer -> when connections were passed to it lately
        self._peers_seen = 0.0
        self._serve: Callable[[socket.socket], None] | None = None

    def _socket_path(self, slot: int) -> Path:
        return self.folder / f"slot-{slot}.sock"

    @property
    def receiving(self) -> bool:
        """True once :meth:`receive_with` has been called."""
        return self._serve is not None

    def receive_with(self, serve: Callable[[socket.socket], None]) -> None:
        """Serve connections passed on by other workers with ``serve`` (a socket already accepted); once."""
        if self._serve is None:
            self._serve = serve
            self.loop.add_reader(self._inbox.fileno(), self._receive)

    def _receive(self) -> None:
        while True:
            try:
                _data, fds, _flags, _address = socket.recv_fds(self._inbox, 16, 8)
            except (BlockingIOError, InterruptedError):
                return
            for fd in fds:
                connection = socket.socket(fileno=fd)
                if self._serve is None:  # pragma: no cover - the reader is added with serve
                    connection.close()
                    continue
                self._serve(connection)

    def _live_peers(self) -> list[int]:
        now = time.monotonic()
        if now - self._peers_seen > _PEERS_TTL:
            self._peers_seen = now
            self._peers = [i for i in range(SLOTS) if i != self.slot and self._socket_path(i).exists()]
        return self._peers

    def _load(self, peer: int, now: float) -> int:
        """A peer's published count, plus what was passed to it too recently to be in that count."""
        sent = self._sent.setdefault(peer, deque())
        while sent and now - sent[0] > _IN_FLIGHT:
            sent.popleft()
        return self.counts[peer] + len(sent)

    def pass_on(self, connection: socket.socket | Any) -> bool:
        """Hand ``connection`` to a less loaded worker (True: the caller closes its copy), else False."""
        peers = self._live_peers()
        if not peers:
            return False
        now = time.monotonic()
        target, load = min(((peer, self._load(peer, now)) for peer in peers), key=lambda pair: pair[1])
        if self._held <= load:  # keeping it leaves them at most one apart
            return False
        try:
            # socket.send_fds ignores its address argument (Python 3.11): sendmsg with the rights itself
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [connection.fileno()]))]
            self._outbox.sendmsg([b"c"], rights, 0, str(self._socket_path(target)))
        except OSError:  # gone, or its queue is full: serve it here
            self._peers_seen = 0.0
            return False
        self._sent[target].append(now)
        return True

    def opened(self) -> None:
        """Count a connection this worker serves."""
        self._held += 1
        self.counts[self.slot] = self._held

    def closed(self) -> None:
        """Count one connection fewer."""
        self._held = max(0, self._held - 1)
        self.counts[self.slot] = self._held


def _claim_slot(folder: Path) -> tuple[int, int]:
    """The first slot whose lock no live worker holds (the flock goes with the process)."""
    for slot in range(SLOTS):
        fd = os.open(folder / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return slot, fd
    raise RuntimeError(f"more than {SLOTS} workers share {folder}")


_balancer: Balancer | None = None
_owner = 0


_failed = 0  # the pid where the balancer could not be set up: it serves what it accepts


def for_this_worker(loop: asyncio.AbstractEventLoop) -> Balancer | None:
    """This process's balancer when ``serve`` runs several workers (``KEYGUARD_BALANCE_DIR``), else None.

    A balancer that cannot be set up (a socket path longer than ``AF_UNIX`` allows, no
    free slot) leaves this worker serving every connection it accepts, as without one.
    """
    global _balancer, _owner, _failed
    folder = os.environ.get(ENV)
    pid = os.getpid()
    if not folder or _failed == pid:
        return None
    if _balancer is None or _owner != pid:
        try:
            _balancer, _owner = Balancer(Path(folder), loop), pid
        except (OSError, RuntimeError, ValueError) as exc:
            _failed = pid
            _log.warning("connections are not balanced across workers: %s", type(exc).__name__)
            return None
    return _balancer
