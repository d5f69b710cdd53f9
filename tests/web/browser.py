"""What the browser tests share: Debian's Chromium (never ``playwright install``) and a live dashboard.

``serve_dashboard`` runs uvicorn with the API app and the dashboard in a thread on a free
127.0.0.1 port and yields the base URL under the host name the test needs (``localhost``
is a secure context for WebAuthn; ``127.0.0.1`` for the rest).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault
from tests.web.scene import Scene, build_scene, make_app

CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
STEP_TIMEOUT_MS = 15_000  # generous: two shared cores may be busy with other suites
SERVER_START_TIMEOUT_S = 15.0


def chromium_path() -> str:
    """The Chromium executable, or skip the test with the reason."""
    for path in CHROMIUM_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    pytest.skip("Chromium not found at /usr/lib/chromium/chromium or /usr/bin/chromium (apt-get install chromium)")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_dashboard(vault: Vault, admin: Principal, host: str = "127.0.0.1") -> Iterator[tuple[str, Scene]]:
    """The populated scene served by uvicorn; yields ``(http://HOST:PORT, scene)``."""
    import uvicorn

    scene = build_scene(vault, admin)
    port = free_port()
    config = uvicorn.Config(
        make_app(vault), host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, name="web-test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            srv.should_exit = True
            pytest.fail(f"uvicorn did not start on port {port} within {SERVER_START_TIMEOUT_S} s")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}", scene
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
