"""Syslog RFC 5424 over UDP (one datagram) and TCP (RFC 6587 octet counting)."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from keyguard.monitor.sinks.base import SinkError, alert_text

FACILITY_AUTHPRIV = 10
SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5}
_SD_ESCAPE = str.maketrans({"\\": "\\\\", '"': '\\"', "]": "\\]"})


def format_5424(alert: dict[str, Any], *, hostname: str, app: str = "keyguard") -> bytes:
    """An RFC 5424 message with an ``alert@32473`` structured-data element and a JSON body."""
    pri = FACILITY_AUTHPRIV * 8 + SEVERITY.get(str(alert.get("severity")), 4)
    stamp = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    params = " ".join(
        f'{name}="{str(alert.get(name, "")).translate(_SD_ESCAPE)}"'
        for name in ("id", "rule", "severity", "key", "count")
    )
    msg = alert_text(alert) + " " + orjson.dumps(alert).decode()
    header = f"<{pri}>1 {stamp} {hostname or '-'} {app} - ALERT [alert@32473 {params}] "
    return header.encode() + b"\xef\xbb\xbf" + msg.encode()


class SyslogSink:
    """``syslog+udp://host:port`` or ``syslog+tcp://host:port``."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.transport = parts.scheme.removeprefix("syslog+")
        if self.transport not in ("udp", "tcp") or not parts.hostname:
            raise SinkError("use syslog+udp://host:port or syslog+tcp://host:port")
        self.kind = f"syslog-{self.transport}"
        self._addr = (parts.hostname, parts.port or 514)
        self.name = f"{parts.scheme}://{parts.hostname}:{self._addr[1]}"
        self._hostname = socket.gethostname()
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def _tcp(self) -> socket.socket:
        if self._sock is None:
            self._sock = socket.create_connection(self._addr, timeout=5)
        return self._sock

    def send(self, alert: dict[str, Any]) -> None:
        """Deliver one alert."""
        message = format_5424(alert, hostname=self._hostname)
        try:
            if self.transport == "udp":
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.sendto(message[:65000], self._addr)
                return
            with self._lock:
                try:
                    self._tcp().sendall(str(len(message)).encode() + b" " + message)
                except OSError:
                    self.close()
                    raise
        except OSError as exc:
            raise SinkError(f"{self.name}: {type(exc).__name__}") from None

    def close(self) -> None:
        """Close the TCP connection, if any."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
