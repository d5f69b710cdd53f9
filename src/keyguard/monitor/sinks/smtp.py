"""E-mail alerts over SMTP, with TLS verified unless the URL explicitly turns it off.

* ``smtp://host[:25]?to=ADDR[&to=..][&from=ADDR]`` — STARTTLS is **required**: a
  server that does not offer it, or whose certificate does not verify against
  the system's CAs (or ``&cafile=PATH``) for ``host``, gets nothing.
* ``smtps://host[:465]?to=ADDR`` — TLS from the first byte, verified alike.
* ``smtp+insecure://host:25?to=ADDR`` (or ``smtp://…&tls=none``) — plain text,
  for a relay on the same host; a warning is logged, and a login is refused
  (it would travel in clear).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from keyguard.monitor.sinks.base import SinkError, alert_text

log = logging.getLogger(__name__)
_MODES = ("starttls", "implicit", "none")


def _mode(scheme: str, query: dict[str, list[str]]) -> str:
    if scheme == "smtp+insecure":
        return "none"
    if "tls" in query:
        mode = query["tls"][0].lower()
        if mode not in _MODES:
            raise SinkError("tls must be starttls, implicit or none")
        return mode
    if query.get("starttls", ["1"])[0].lower() in ("0", "false", "no"):
        raise SinkError("STARTTLS cannot be switched off with starttls=0: say tls=none (or smtp+insecure://)")
    return "implicit" if scheme == "smtps" else "starttls"


class SmtpSink:
    """Send each alert as a plain-text mail with the alert JSON inline."""

    kind = "smtp"

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self._to = query.get("to", [])
        if not self._to or not parts.hostname:
            raise SinkError("use smtp://host:port?to=ADDR")
        self._sender = query.get("from", ["keyguard@localhost"])[0]
        self._mode = _mode(parts.scheme, query)
        self._host, self._port = parts.hostname, parts.port or (465 if self._mode == "implicit" else 25)
        self._login = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
        self.name = f"{parts.scheme}://{self._host}:{self._port}"
        cafile = query.get("cafile", [None])[0]
        self._context: ssl.SSLContext | None = None
        if self._mode == "none":
            if self._login is not None:
                raise SinkError("a login needs TLS: drop tls=none / smtp+insecure, or the credentials")
            log.warning("alert mail to %s is sent without TLS (explicitly disabled)", self.name)
        else:
            try:
                self._context = ssl.create_default_context(cafile=cafile)
            except (OSError, ssl.SSLError):
                raise SinkError("cannot load cafile") from None
            self._context.minimum_version = ssl.TLSVersion.TLSv1_2

    def _connect(self) -> smtplib.SMTP:
        if self._mode == "implicit":
            return smtplib.SMTP_SSL(self._host, self._port, timeout=10, context=self._context)
        client = smtplib.SMTP(self._host, self._port, timeout=10)
        if self._mode == "starttls":
            try:
                client.ehlo()
                if not client.has_extn("starttls"):
                    raise SinkError(f"{self.name}: the server does not offer STARTTLS (tls=none to send in clear)")
                client.starttls(context=self._context)
                client.ehlo()
            except BaseException:
                client.close()
                raise
        return client

    def send(self, alert: dict[str, Any]) -> None:
        """Deliver one alert."""
        message = EmailMessage()
        message["Subject"] = f"keyguard alert: {alert.get('title')}"[:200]
        message["From"] = self._sender
        message["To"] = ", ".join(self._to)
        message.set_content(alert_text(alert) + "\n\n" + orjson.dumps(alert, option=orjson.OPT_INDENT_2).decode())
        try:
            with self._connect() as client:
                if self._login is not None:
                    client.login(*self._login)
                client.send_message(message)
        except ssl.SSLCertVerificationError:
            raise SinkError(f"{self.name}: TLS certificate not trusted for {self._host}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise SinkError(f"{self.name}: {type(exc).__name__}") from None
