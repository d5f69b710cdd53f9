"""Every sink against a real local receiver; retries, dead letters, no secret leaks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from email import message_from_bytes
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from keyguard.errors import UsageError
from keyguard.monitor.delivery import Dispatcher
from keyguard.monitor.detect.engine import AlertUpdate
from keyguard.monitor.sinks import parse_sink
from keyguard.monitor.sinks.http import SIGNATURE_HEADER, TIMESTAMP_HEADER
from keyguard.monitor.store import save_alerts
from keyguard.store.monitor_tables import AlertDelivery

from .receivers import free_port, http_receiver, tcp_receiver, udp_receiver

ALERT: dict[str, Any] = {
    "id": 7,
    "rule": "denied-burst",
    "severity": "high",
    "key": "pay",
    "title": "burst of refused calls on pay",
    "count": 3,
    "first_seen": "2026-01-05T10:00:00.000000Z",
    "last_seen": "2026-01-05T10:01:00.000000Z",
    "status": "open",
}


def _headers(raw: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in raw.items()}


def test_webhook_is_signed() -> None:
    with http_receiver() as rx:
        sink = parse_sink(rx.url + "/hook#secret=s3cr3t")
        assert "s3cr3t" not in sink.name
        sink.send(ALERT)
    path, headers, body = rx.requests[0]
    headers = _headers(headers)
    assert path == "/hook" and json.loads(body)["alert"]["id"] == 7
    stamp = headers[TIMESTAMP_HEADER.lower()]
    expected = hmac.new(b"s3cr3t", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER.lower()] == f"sha256={expected}"


def test_webhook_secret_from_config() -> None:
    with http_receiver() as rx:
        parse_sink(rx.url, webhook_secret="cfg").send(ALERT)
    assert SIGNATURE_HEADER.lower() in _headers(rx.requests[0][1])


def test_slack() -> None:
    with http_receiver() as rx:
        parse_sink("slack+" + rx.url + "/services/T/B/X").send(ALERT)
    path, _, body = rx.requests[0]
    assert path == "/services/T/B/X"
    assert "denied-burst" in json.loads(body)["text"]


def test_splunk_hec() -> None:
    with http_receiver(reply={"text": "Success", "code": 0}) as rx:
        url = rx.url.replace("http://", "splunk+http://hec-token-123@")
        sink = parse_sink(url)
        assert "hec-token-123" not in sink.name
        sink.send(ALERT)
    path, headers, body = rx.requests[0]
    assert path == "/services/collector/event"
    assert _headers(headers)["authorization"] == "Splunk hec-token-123"
    assert json.loads(body)["event"]["rule"] == "denied-burst"


def test_elasticsearch_bulk() -> None:
    with http_receiver(reply={"errors": False, "items": [{"index": {"status": 201}}]}) as rx:
        parse_sink(rx.url.replace("http://", "elasticsearch+http://") + "/kg-alerts").send(ALERT)
    path, headers, body = rx.requests[0]
    assert path == "/_bulk" and _headers(headers)["content-type"] == "application/x-ndjson"
    action, doc = (json.loads(line) for line in body.decode().strip().split("\n"))
    assert action == {"index": {"_index": "kg-alerts", "_id": "7"}} and doc["id"] == 7


def test_elasticsearch_reported_errors_fail() -> None:
    from keyguard.monitor.sinks import SinkError

    with http_receiver(reply={"errors": True}) as rx:
        sink = parse_sink(rx.url.replace("http://", "elasticsearch+http://") + "/kg")
        with pytest.raises(SinkError):
            sink.send(ALERT)


def test_syslog_udp() -> None:
    with udp_receiver() as (port, sock):
        parse_sink(f"syslog+udp://127.0.0.1:{port}").send(ALERT)
        data, _ = sock.recvfrom(65536)
    assert data.startswith(b"<83>1 ")  # authpriv.err
    assert b'[alert@32473 id="7" rule="denied-burst"' in data


def test_syslog_tcp_octet_counting() -> None:
    with tcp_receiver() as (port, chunks):
        sink = parse_sink(f"syslog+tcp://127.0.0.1:{port}")
        sink.send(ALERT)
        sink.send({**ALERT, "id": 8})
        getattr(sink, "close")()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and sum(map(len, chunks)) < 200:
            time.sleep(0.01)
        time.sleep(0.1)
    stream = b"".join(chunks)
    frames = []
    while stream:
        length, _, rest = stream.partition(b" ")
        frames.append(rest[: int(length)])
        stream = rest[int(length) :]
    assert len(frames) == 2 and all(f.startswith(b"<83>1 ") for f in frames)


def test_smtp() -> None:
    from aiosmtpd.controller import Controller

    received: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            received.append(envelope.content)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        parse_sink(f"smtp+insecure://127.0.0.1:{port}?to=secops@example.org").send(ALERT)  # plain relay
    finally:
        controller.stop()
    mail = message_from_bytes(received[0])
    assert mail["To"] == "secops@example.org" and "burst" in mail["Subject"]


def test_unknown_and_bad_sinks() -> None:
    with pytest.raises(UsageError):
        parse_sink("ftp://x")
    with pytest.raises(UsageError) as info:
        parse_sink("splunk+https://host:8088")
    with pytest.raises(UsageError):
        parse_sink("elasticsearch+http://user:pw@host:9200")
    assert "pw" not in str(info.value)


def _alert_row(engine: Engine) -> dict[str, Any]:
    update = AlertUpdate(
        rule="denied-burst",
        severity="high",
        key="pay",
        group_key="g",
        title="t",
        details={},
        ts="2026-01-05T10:00:00.000000Z",
        is_new=True,
    )
    (alert_id,) = save_alerts(engine, [update])
    return {**ALERT, "id": alert_id}


def test_retries_then_delivered(engine: Engine) -> None:
    alert = _alert_row(engine)
    with http_receiver(statuses=[500, 503]) as rx:
        dispatcher = Dispatcher(engine, [parse_sink(rx.url)], attempts=4, backoff=0.01)
        dispatcher.submit(alert)
        dispatcher.close()
    assert len(rx.requests) == 3
    with Session(engine) as session:
        (row,) = session.execute(select(AlertDelivery)).scalars().all()
    assert row.outcome == "delivered" and row.attempts == 3


def test_dead_letter_after_last_try(engine: Engine) -> None:
    alert = _alert_row(engine)
    with http_receiver(statuses=[500] * 10) as rx:
        sink = parse_sink(rx.url + "#secret=topsecret")
        dispatcher = Dispatcher(engine, [sink], attempts=3, backoff=0.01)
        dispatcher.submit(alert)
        dispatcher.close()
    with Session(engine) as session:
        (row,) = session.execute(select(AlertDelivery)).scalars().all()
    assert row.outcome == "dead" and row.attempts == 3 and row.payload is not None
    assert "topsecret" not in (row.error or "") + row.sink


def test_submit_never_blocks() -> None:
    port = free_port()  # nothing listens there: every try fails after a refused connect
    dispatcher = Dispatcher(None, [parse_sink(f"http://127.0.0.1:{port}")], attempts=3, backoff=0.2)
    start = time.monotonic()
    for i in range(50):
        dispatcher.submit({**ALERT, "id": i})
    assert time.monotonic() - start < 0.1
    dispatcher.close(timeout=0.5)
