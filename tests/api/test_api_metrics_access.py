"""``/metrics`` is not public, and its labels stay bounded whatever callers send (issue 12 point 11)."""

from __future__ import annotations

import hashlib
import socket
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from tests.api.conftest import TokenFactory, auth

from keyguard.api import create_app
from keyguard.api.metrics_access import load_access, parse_listen, start_listener
from keyguard.errors import UsageError
from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault


def _label_sets(prefix: str = "keyguard_") -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    found = set()
    for family in REGISTRY.collect():
        if not family.name.startswith(prefix):
            continue
        for sample in family.samples:
            found.add((sample.name, tuple(sorted(sample.labels.items()))))
    return found


def test_metrics_without_a_token_is_401_and_audited(api: TestClient, events) -> None:  # type: ignore[no-untyped-def]
    r = api.get("/metrics")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "keyguard_http_requests_total" not in r.text
    assert events(op="auth", result="denied")
    assert api.get("/metrics", headers=auth("kgt_wrong")).status_code == 401


def test_metrics_needs_a_role_that_reads_the_audit_log(api: TestClient, tokens: TokenFactory) -> None:
    assert api.get("/metrics", headers=auth(tokens("svc", "service"))).status_code == 403
    r = api.get("/metrics", headers=auth(tokens("aud", "auditor")))
    assert r.status_code == 200 and "keyguard_http_requests_total" in r.text


def test_a_configured_metrics_token_is_accepted(vault: Vault, tmp_path: Path) -> None:
    app = create_app(vault=vault, metrics_token="scrape-me-0123456789")
    with TestClient(app) as client:
        assert client.get("/metrics", headers=auth("scrape-me-0123456789")).status_code == 200
        assert client.get("/metrics", headers=auth("scrape-me-012345678")).status_code == 401


def test_metrics_token_from_keyguard_toml(tmp_path: Path) -> None:
    token_file = tmp_path / "metrics.token"
    token_file.write_text("from-a-file\n")
    config = tmp_path / "keyguard.toml"
    hashed = hashlib.sha256(b"from-a-digest").hexdigest()
    config.write_text(f'[metrics]\ntoken_file = "{token_file}"\ntoken_sha256 = "{hashed}"\n')
    access = load_access(config, environ={"KEYGUARD_METRICS_TOKEN": "from-env"})
    assert access.accepts("from-a-file") and access.accepts("from-a-digest") and access.accepts("from-env")
    assert not access.accepts("from-a-fil") and not access.accepts("")
    config.write_text('[metrics]\ntoken_sha256 = "abc"\n')
    with pytest.raises(UsageError, match="64 hex digits"):
        load_access(config, environ={})


def test_labels_stay_bounded_after_a_thousand_key_names(
    api: TestClient, tokens: TokenFactory, vault: Vault, admin: Principal
) -> None:
    svc = auth(tokens("svc", "service", ["pay:encrypt"]))
    vault.create_key(admin, "pay", "encrypt")
    body = {"plaintext_b64": "eA=="}
    # Warm up every label set the requests below can reach.
    for headers in (svc, auth("kgt_nope"), {}):
        api.post("/v1/keys/pay/encrypt", json=body, headers=headers)
        api.post("/v1/keys/other/encrypt", json=body, headers=headers)
    api.get("/v1/nothing/here", headers=svc)
    api.request("BREW", "/v1/keys/warm", headers=svc)
    before = _label_sets()
    for i in range(1000):
        name = f"leaked-{i:04d}"
        # refused (403) with a token, unauthenticated (401) without one, raw unmatched paths,
        # and methods nobody registered: none of them may add a label set.
        api.post(f"/v1/keys/{name}/encrypt", json=body, headers=svc if i % 2 else auth("kgt_nope"))
        if i % 10 == 0:
            api.get(f"/v1/nothing/{name}", headers=svc)
            api.request(f"BREW{i}", f"/v1/keys/{name}", headers=svc)
    after = _label_sets()
    grown = after - before
    assert len(grown) <= 4, sorted(grown)[:10]
    text = api.get("/metrics", headers=auth(tokens("aud", "auditor"))).text
    assert "leaked-" not in text and "BREW" not in text
    assert 'status="403"' not in text and 'status="4xx"' in text
    assert 'route="/v1/keys/{name}/encrypt"' in text and "/v1/nothing" not in text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_separate_metrics_listener_serves_without_a_token() -> None:
    port = _free_port()
    server = start_listener(f"127.0.0.1:{port}")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:  # noqa: S310
            assert b"keyguard_http_requests_total" in response.read()
    finally:
        server.shutdown()
    assert parse_listen("[::1]:9464") == ("::1", 9464)
    for bad in ("9464", "host:", "host:99999", ":9464"):
        with pytest.raises(UsageError):
            parse_listen(bad)
