"""Outbound hardening of the alert sinks (issue 12 point 11): SMTP TLS is verified and
required, and webhook secrets never reach a log line, an exception or the database."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from keyguard.errors import UsageError
from keyguard.monitor.delivery import Dispatcher
from keyguard.monitor.sinks import SinkError, parse_sink
from keyguard.store.monitor_tables import AlertDelivery

from .receivers import free_port, http_receiver
from .test_sinks import ALERT, _alert_row


# ---------------------------------------------------------------- certificates
def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: Any, *, ca: bool
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private CA and a server certificate for 127.0.0.1 it signed (untrusted by the system)."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keyguard test CA")])
    ca = _cert("keyguard test CA", ca_key, ca_name, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert("127.0.0.1", key, ca_name, ca_key, ca=False)
    paths = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def _server_context(pki: dict[str, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["cert"], pki["key"])
    return context


@contextmanager
def smtp_server(
    *, starttls: ssl.SSLContext | None = None, implicit: ssl.SSLContext | None = None
) -> Iterator[tuple[int, list[bytes]]]:
    """An aiosmtpd server on 127.0.0.1 offering STARTTLS, implicit TLS, or neither."""
    from aiosmtpd.controller import Controller

    received: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            received.append(envelope.content)
            return "250 OK"

    port = free_port()
    kwargs: dict[str, Any] = {}
    if starttls is not None:
        kwargs.update(tls_context=starttls, require_starttls=True)
    if implicit is not None:
        kwargs.update(ssl_context=implicit)
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


# ---------------------------------------------------------------- SMTP
def test_smtp_refuses_a_self_signed_certificate(pki: dict[str, Path]) -> None:
    with smtp_server(starttls=_server_context(pki)) as (port, received):
        with pytest.raises(SinkError, match="certificate not trusted"):
            parse_sink(f"smtp://127.0.0.1:{port}?to=secops@example.org").send(ALERT)
    assert received == []


def test_smtp_delivers_over_verified_starttls(pki: dict[str, Path]) -> None:
    with smtp_server(starttls=_server_context(pki)) as (port, received):
        parse_sink(f"smtp://127.0.0.1:{port}?to=secops@example.org&cafile={pki['ca']}").send(ALERT)
    assert len(received) == 1 and b"denied-burst" in received[0]


def test_smtp_requires_starttls(caplog: pytest.LogCaptureFixture) -> None:
    with smtp_server() as (port, received):  # a server (or a downgrading attacker) without STARTTLS
        with pytest.raises(SinkError, match="does not offer STARTTLS"):
            parse_sink(f"smtp://127.0.0.1:{port}?to=secops@example.org").send(ALERT)
        assert received == []
        with caplog.at_level(logging.WARNING):
            for url in (
                f"smtp+insecure://127.0.0.1:{port}?to=a@example.org",
                f"smtp://127.0.0.1:{port}?to=a@example.org&tls=none",
            ):
                parse_sink(url).send(ALERT)
    assert len(received) == 2
    assert sum("without TLS" in r.getMessage() for r in caplog.records) == 2


def test_smtps_verifies_the_certificate(pki: dict[str, Path]) -> None:
    with smtp_server(implicit=_server_context(pki)) as (port, received):
        with pytest.raises(SinkError, match="certificate not trusted"):
            parse_sink(f"smtps://127.0.0.1:{port}?to=secops@example.org").send(ALERT)
        parse_sink(f"smtps://127.0.0.1:{port}?to=secops@example.org&cafile={pki['ca']}").send(ALERT)
    assert len(received) == 1


def test_smtp_refuses_ambiguous_or_clear_text_logins() -> None:
    with pytest.raises(UsageError, match="login needs TLS") as info:
        parse_sink("smtp+insecure://bob:hunter2@mail.example:25?to=a@example.org")
    assert "hunter2" not in str(info.value)
    with pytest.raises(UsageError, match="tls=none"):
        parse_sink("smtp://mail.example?to=a@example.org&starttls=0")
    with pytest.raises(UsageError):
        parse_sink("smtp://mail.example?to=a@example.org&tls=maybe")


# ---------------------------------------------------------------- webhook secrets
SLACK_SECRET = "XyZ0123456789abcdefGHIJK"


def test_slack_url_never_logged_raised_or_stored(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    alert = _alert_row(engine)
    caplog.set_level(logging.DEBUG)
    with http_receiver(statuses=[500] * 5) as rx:
        url = f"slack+{rx.url}/services/T0001/B0001/{SLACK_SECRET}"
        sink = parse_sink(url)
        assert SLACK_SECRET not in sink.name and "/services" not in sink.name
        with pytest.raises(SinkError) as info:
            sink.send(alert)
        assert SLACK_SECRET not in str(info.value)
        dispatcher = Dispatcher(engine, [sink], attempts=2, backoff=0.01)
        dispatcher.submit(alert)
        dispatcher.close()
    with http_receiver() as rx:  # a success is logged by httpx at INFO, with the URL
        parse_sink(f"slack+{rx.url}/services/T0001/B0001/{SLACK_SECRET}").send(alert)
        parse_sink(f"{rx.url}/hooks/{SLACK_SECRET}?token={SLACK_SECRET}").send(alert)
    assert rx.requests and rx.requests[0][0].endswith(SLACK_SECRET)  # the receiver still got it
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)
    assert not [r.getMessage() for r in caplog.records if SLACK_SECRET in r.getMessage()]
    with Session(engine) as session:
        rows = session.execute(select(AlertDelivery)).scalars().all()
    assert rows and all(SLACK_SECRET not in f"{r.sink} {r.error} {r.payload}" for r in rows)
    with pytest.raises(UsageError) as bad:
        parse_sink(f"slack+https://hooks.example:99999/services/T/B/{SLACK_SECRET}")
    assert SLACK_SECRET not in str(bad.value)


def test_sink_references_tell_sinks_on_one_host_apart() -> None:
    a = parse_sink("slack+https://hooks.example/services/T/B/one-secret-value")
    b = parse_sink("slack+https://hooks.example/services/T/B/two-secret-value")
    assert a.name != b.name and a.name.startswith("slack+https://hooks.example/…#fp=")
    assert parse_sink("slack+https://hooks.example/services/T/B/one-secret-value").name == a.name


def test_migration_0014_scrubs_webhook_paths_recorded_before(engine: Engine) -> None:
    import importlib.util

    from keyguard.store.db import MIGRATIONS_DIR

    spec = importlib.util.spec_from_file_location("m0014", MIGRATIONS_DIR / "versions" / "0014_sink_references.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    alert = _alert_row(engine)
    old_webhook = f"https://hooks.example/services/T0001/B0001/{SLACK_SECRET}"
    old_names = [old_webhook, "splunk+https://hec.example:8088/services/collector/event", "syslog+udp://l:514"]
    with engine.begin() as conn:
        for name in old_names:
            conn.execute(
                AlertDelivery.__table__.insert().values(
                    alert_id=alert["id"], sink=name, outcome="dead", attempts=4, error=f"{name}: HTTP 500",
                    at=dt.datetime.now(dt.UTC),
                )
            )  # fmt: skip
        assert module.scrub(conn) == 2
        assert module.scrub(conn) == 0
    with Session(engine) as session:
        rows = {r.sink: r.error for r in session.execute(select(AlertDelivery)).scalars()}
    assert not [s for s in rows if SLACK_SECRET in s or SLACK_SECRET in (rows[s] or "")]
    # the sink of the same URL now has the very name the row was rewritten to (dead letters still match)
    assert parse_sink(old_webhook).name in rows
    assert parse_sink("splunk+https://tok@hec.example:8088").name in rows
    assert "syslog+udp://l:514" in rows


@pytest.mark.slow
def test_cli_watch_and_alert_show_never_print_the_slack_url(
    db_url: str,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from keyguard.cli.main import main

    from .test_watch import append_audit

    monkeypatch.setenv("KEYGUARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KEYGUARD_DATABASE_URL", db_url)
    caplog.set_level(logging.DEBUG)
    append_audit(engine, 1, 10)
    with http_receiver(statuses=[500] * 10) as rx:
        url = f"slack+{rx.url}/services/T0001/B0001/{SLACK_SECRET}"
        assert main(["watch", "--once", "--sink", url]) == 1
        assert main(["alert", "redeliver", "--sink", url, "--json"]) == 1
    before = capsys.readouterr()
    assert main(["alert", "list", "--json"]) == 0
    (alert,) = json.loads(capsys.readouterr().out)
    assert main(["alert", "show", str(alert["id"])]) == 0
    assert main(["alert", "show", str(alert["id"]), "--json"]) == 0
    printed = capsys.readouterr()
    assert "dead" in printed.out
    assert SLACK_SECRET not in before.out + before.err + printed.out + printed.err
    assert not [r for r in caplog.records if SLACK_SECRET in r.getMessage()]
