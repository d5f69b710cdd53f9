"""E-mail: ``smtp://host:port?to=ADDR[&to=..][&from=ADDR][&starttls=1]``; ``smtps://`` for TLS."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from keyguard.monitor.sinks.base import SinkError, alert_text


class SmtpSink:
    """Send each alert as a plain-text mail with the alert JSON attached inline."""

    kind = "smtp"

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self._to = query.get("to", [])
        if not self._to or not parts.hostname:
            raise SinkError("use smtp://host:port?to=ADDR")
        self._sender = query.get("from", ["keyguard@localhost"])[0]
        self._tls = parts.scheme == "smtps"
        self._starttls = query.get("starttls", ["0"])[0] in ("1", "true")
        self._host, self._port = parts.hostname, parts.port or (465 if self._tls else 25)
        self._login = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
        self.name = f"{parts.scheme}://{self._host}:{self._port}"

    def send(self, alert: dict[str, Any]) -> None:
        """Deliver one alert."""
        message = EmailMessage()
        message["Subject"] = f"keyguard alert: {alert.get('title')}"[:200]
        message["From"] = self._sender
        message["To"] = ", ".join(self._to)
        message.set_content(alert_text(alert) + "\n\n" + orjson.dumps(alert, option=orjson.OPT_INDENT_2).decode())
        cls = smtplib.SMTP_SSL if self._tls else smtplib.SMTP
        try:
            with cls(self._host, self._port, timeout=10) as client:
                if self._starttls:
                    client.starttls()
                if self._login is not None:
                    client.login(*self._login)
                client.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise SinkError(f"{self.name}: {type(exc).__name__}") from None
