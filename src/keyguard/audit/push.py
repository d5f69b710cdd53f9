"""Periodic push of signed checkpoints to sinks outside the database.

Configured in ``$KEYGUARD_HOME/keyguard.toml``::

    [audit.checkpoints]
    interval = "5m"                     # seconds, or 30s / 5m / 1h; default 5m
    sinks = [
      "file:///var/lib/keyguard-checkpoints/audit.jsonl",   # one JSON line per checkpoint, 0600
      "https://evidence.example/keyguard/checkpoints",      # POST of the JSON document (httpx)
      "syslog+udp://127.0.0.1:514",                         # RFC 5424 message, the document as text
    ]

``keyguard serve`` pushes a checkpoint whenever the head moved since the last
push; ``keyguard audit checkpoint --push`` pushes once (for cron). A file sink's
history is what ``keyguard audit verify --against FILE`` reads.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from sqlalchemy import Engine

from keyguard.audit.checkpoint import read_head, signed_checkpoint
from keyguard.audit.sink_names import reference
from keyguard.errors import KeyguardError, UsageError

log = logging.getLogger("keyguard.audit")
DEFAULT_INTERVAL = 300.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class PushConfig:
    """The ``[audit.checkpoints]`` table."""

    sinks: tuple[str, ...] = ()
    interval: float = DEFAULT_INTERVAL
    extra: dict[str, Any] = field(default_factory=dict)


def _interval(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    match = _DURATION.match(str(value))
    if not match or float(match.group(1)) <= 0:
        raise UsageError("[audit.checkpoints] interval must be seconds or like 30s, 5m, 1h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def load_config(path: Path) -> PushConfig | None:
    """``[audit.checkpoints]`` of ``path`` (keyguard.toml), or None when absent."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path.name}: {type(exc).__name__}") from None
    table = data.get("audit", {}).get("checkpoints")
    if table is None:
        return None
    sinks = table.get("sinks", [])
    if not isinstance(sinks, list) or not all(isinstance(s, str) for s in sinks):
        raise UsageError("[audit.checkpoints] sinks must be a list of URLs")
    for sink in sinks:
        _check_sink(sink)
    return PushConfig(tuple(sinks), _interval(table.get("interval", DEFAULT_INTERVAL)))


def _check_sink(url: str) -> None:
    scheme = urlsplit(url).scheme
    if scheme == "file":
        if not unquote(urlsplit(url).path).startswith("/"):
            raise UsageError("a file checkpoint sink needs an absolute path (file:///…)")
        return
    if scheme not in ("http", "https", "syslog+udp", "syslog+tcp"):
        raise UsageError(
            f"unknown checkpoint sink scheme {scheme!r}", hint="file:///…, https://…, syslog+udp://host:port"
        )



def _to_file(url: str, line: bytes) -> None:
    path = unquote(urlsplit(url).path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _to_webhook(url: str, body: bytes) -> None:
    response = httpx.post(
        url, content=body, headers={"Content-Type": "application/json"}, timeout=httpx.Timeout(5.0, connect=2.0)
    )
    if response.status_code >= 300:
        raise OSError(f"HTTP {response.status_code}")


def _to_syslog(url: str, body: bytes) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 514
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    message = f"<110>1 {now} {socket.gethostname()} keyguard - audit-checkpoint - ".encode() + body
    kind = socket.SOCK_DGRAM if parts.scheme == "syslog+udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind) as sock:
        sock.settimeout(5.0)
        sock.connect((host, port))
        sock.sendall(message if kind == socket.SOCK_DGRAM else message + b"\n")


def push(doc: dict[str, Any], sinks: tuple[str, ...]) -> list[str]:
    """Deliver ``doc`` to every sink; returns the failures (sink and error class), never raising."""
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    failures = []
    for url in sinks:
        scheme = urlsplit(url).scheme
        try:
            if scheme == "file":
                _to_file(url, body + b"\n")
            elif scheme in ("http", "https"):
                _to_webhook(url, body)
            else:
                _to_syslog(url, body)
        except (OSError, httpx.HTTPError) as exc:
            failures.append(f"{reference(url)}: {type(exc).__name__}")
    return failures


class CheckpointPusher:
    """A daemon thread that pushes a signed checkpoint whenever the head moved."""

    def __init__(
        self,
        engine: Engine,
        checkpoint_key: bytes,
        config: PushConfig,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._key = checkpoint_key
        self._config = config
        self._now = now
        self._pushed: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> bool:
        """Push if the head moved since the last push; True when something was pushed to every sink."""
        counter = read_head(self._engine)[3]
        if counter == self._pushed:
            return False
        doc = signed_checkpoint(self._engine, self._key, self._now())
        failures = push(doc, self._config.sinks)
        for failure in failures:
            log.warning("audit checkpoint push failed: %s", failure)
        if not failures:
            self._pushed = int(doc["counter"])
        return not failures

    def _run(self) -> None:
        while not self._stop.wait(self._config.interval):
            try:
                self.tick()
            except KeyguardError as exc:  # a forged head: say so, keep watching
                log.error("audit checkpoint not pushed: %s", exc.message)
            except Exception as exc:  # noqa: BLE001 - the next tick retries
                log.warning("audit checkpoint push failed: %s", type(exc).__name__)

    def start(self) -> None:
        """Start pushing in the background (first push after one interval, and at stop)."""
        if self._thread is None and self._config.sinks:
            self._thread = threading.Thread(target=self._run, name="keyguard-audit-checkpoints", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread, pushing a last checkpoint if the head moved."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - shutting down
                log.warning("audit checkpoint push at stop failed: %s", type(exc).__name__)
