"""HTTP sinks: JSON webhook (HMAC-SHA256 signed), Slack, Splunk HEC, Elasticsearch bulk."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import httpx
import orjson

from keyguard.monitor.sinks.base import SinkError, alert_text, redact_url, reference

SIGNATURE_HEADER = "X-Keyguard-Signature"
TIMESTAMP_HEADER = "X-Keyguard-Timestamp"
TIMEOUT = httpx.Timeout(5.0, connect=2.0)


class _RedactUrls(logging.Filter):
    """httpx logs every request's full URL at INFO; a webhook's URL is its secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(str(a)) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


if not any(isinstance(f, _RedactUrls) for f in logging.getLogger("httpx").filters):
    logging.getLogger("httpx").addFilter(_RedactUrls())


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``timestamp.body`` (replay-resistant)."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


class _HttpSink:
    kind = "http"

    def __init__(self, url: str, *, verify: bool = True) -> None:
        self.name = reference(url)
        try:
            parsed = httpx.URL(url)
            _ = urlsplit(url).port
        except (ValueError, httpx.InvalidURL):
            raise SinkError("not a valid URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise SinkError("not a valid http(s) URL")
        self._client = httpx.Client(timeout=TIMEOUT, verify=verify)

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        try:
            response = self._client.post(url, content=body, headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise SinkError(f"{self.name}: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise SinkError(f"{self.name}: HTTP {response.status_code}")
        return response


class WebhookSink(_HttpSink):
    """POST the alert as JSON; with a secret, sign ``timestamp.body`` in a header."""

    kind = "webhook"

    def __init__(self, url: str, secret: str | None = None) -> None:
        parts = urlsplit(url)
        fragment = parse_qs(parts.fragment)
        secret = secret or (fragment["secret"][0] if "secret" in fragment else None)
        self._url = urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
        self._secret = secret.encode() if secret else None
        super().__init__(self._url)

    def send(self, alert: dict[str, Any]) -> None:
        """Deliver one alert."""
        body = orjson.dumps({"type": "keyguard.alert", "alert": alert})
        headers = {"Content-Type": "application/json", "User-Agent": "keyguard-monitor"}
        if self._secret is not None:
            stamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = stamp
            headers[SIGNATURE_HEADER] = sign(self._secret, stamp, body)
        self._post(self._url, body, headers)


class SlackSink(_HttpSink):
    """Slack-compatible incoming webhook: ``slack+https://hooks.example/...``."""

    kind = "slack"

    def __init__(self, url: str) -> None:
        self._url = url.removeprefix("slack+")
        super().__init__(self._url)
        self.name = "slack+" + reference(self._url)

    def send(self, alert: dict[str, Any]) -> None:
        """Deliver one alert as a chat message."""
        body = orjson.dumps({"text": alert_text(alert)})
        self._post(self._url, body, {"Content-Type": "application/json"})


class SplunkSink(_HttpSink):
    """Splunk HTTP Event Collector: ``splunk+https://TOKEN@host:port`` (``splunk+http`` too)."""

    kind = "splunk"

    def __init__(self, url: str) -> None:
        parts = urlsplit(url.removeprefix("splunk+"))
        token = unquote(parts.username or parts.password or "")
        if not token:
            raise SinkError("splunk sink needs a token: splunk+https://TOKEN@host:port")
        self._token = token
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        path = parts.path if parts.path not in ("", "/") else "/services/collector/event"
        verify = parse_qs(parts.query).get("verify", ["true"])[0] != "false"
        self._url = urlunsplit((parts.scheme, netloc, path, "", ""))
        super().__init__(self._url, verify=verify)
        self.name = f"splunk+{reference(self._url)}"

    def send(self, alert: dict[str, Any]) -> None:
        """Deliver one alert as a HEC event."""
        body = orjson.dumps(
            {
                "time": time.time(),
                "source": "keyguard",
                "sourcetype": "keyguard:alert",
                "event": alert,
            }
        )
        headers = {"Authorization": f"Splunk {self._token}", "Content-Type": "application/json"}
        response = self._post(self._url, body, headers)
        try:
            code = response.json().get("code", 0)
        except ValueError:
            code = 0
        if code not in (0, None):
            raise SinkError(f"{self.name}: HEC code {code}")


class ElasticsearchSink(_HttpSink):
    """Elasticsearch / OpenSearch ``_bulk``: ``elasticsearch+http(s)://[user:pass@]host:port/INDEX``."""

    kind = "elasticsearch"

    def __init__(self, url: str) -> None:
        parts = urlsplit(url.removeprefix("elasticsearch+"))
        index = parts.path.strip("/")
        if not index or "/" in index:
            raise SinkError("elasticsearch sink needs an index: elasticsearch+http://host:9200/INDEX")
        self._index = index
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        self._url = urlunsplit((parts.scheme, netloc, "/_bulk", "", ""))
        self._auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
        super().__init__(self._url)
        self.name = f"elasticsearch+{parts.scheme}://{netloc}/{index}"

    def send(self, alert: dict[str, Any]) -> None:
        """Index one alert document (id = alert id, so a retry does not duplicate)."""
        action = {"index": {"_index": self._index, "_id": str(alert.get("id"))}}
        doc = {**alert, "@timestamp": alert.get("last_seen")}
        body = orjson.dumps(action) + b"\n" + orjson.dumps(doc) + b"\n"
        headers = {"Content-Type": "application/x-ndjson"}
        if self._auth is not None:
            pair = f"{self._auth[0]}:{self._auth[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        response = self._post(self._url, body, headers)
        try:
            errors = bool(response.json().get("errors"))
        except ValueError:
            errors = True
        if errors:
            raise SinkError(f"{self.name}: bulk request reported errors")
