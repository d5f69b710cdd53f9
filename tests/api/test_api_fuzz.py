"""Absurd inputs on every parameter of the OpenAPI document answer 4xx, never 5xx.

A small fuzz loop of our own: each path and query parameter of each operation gets
huge and negative integers, huge relative times, out-of-calendar times and strings
that are not what the parameter expects; each request body field of the key
operations gets huge versions.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault

ABSURD = [
    "99999999999999999999",
    "9223372036854775808",
    "2147483648",
    "-1",
    "0",
    "1e309",
    "-99999999999h",
    "-99999999999999999999d",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "@@@",
    "pay@99999999999999999999",
    "kg:v1:pay:1:@@@",
]


def _requests(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            params = operation.get("parameters", [])
            in_path = {
                p["name"]: ("pay" if p.get("schema", {}).get("type") == "string" else "1")
                for p in params
                if p["in"] == "path"
            }
            for value in ABSURD:
                for name in in_path:
                    found.append((method, path.format(**{**in_path, name: value}), {}))
                for p in params:
                    if p["in"] == "query":
                        found.append((method, path.format(**in_path), {p["name"]: value}))
    return found


def test_no_parameter_answers_5xx(as_admin: TestClient, vault: Vault, admin: Principal) -> None:
    vault.create_key(admin, "pay", "encrypt", None, "high", "")
    requests = _requests(as_admin.get("/openapi.json").json())
    assert len(requests) > 100
    failures = []
    for method, url, params in requests:
        answer = as_admin.request(method, url, params=params)
        if answer.status_code >= 500:
            failures.append((method, url, params, answer.status_code))
    assert failures == []


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("/v1/audit", {"since": "-99999999999h"}),
        ("/v1/audit", {"after_id": "99999999999999999999"}),
        ("/v1/incidents/99999999999999999999", {}),
        ("/v1/keys/pay/public", {"version": "99999999999999999999"}),
    ],
)
def test_huge_values_are_bad_input(
    as_admin: TestClient, vault: Vault, admin: Principal, url: str, params: dict[str, str]
) -> None:
    vault.create_key(admin, "pay", "sign", "ed25519", "high", "")
    answer = as_admin.get(url, params=params)
    assert answer.status_code in (404, 422), answer.text
    assert "Overflow" not in answer.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/keys/pay/config", {"min_decryption_version": 2**70}),
        ("/v1/keys/pay/verify", {"message_b64": "AAAA", "signature_b64": "AAAA", "version": 2**70}),
        ("/v1/keys/pay/versions/99999999999999999999/disable", None),
        ("/v1/incidents/99999999999999999999/assess", None),
    ],
)
def test_huge_values_in_posts_are_bad_input(
    as_admin: TestClient, vault: Vault, admin: Principal, path: str, body: dict[str, Any] | None
) -> None:
    vault.create_key(admin, "pay", "sign", "ed25519", "high", "")
    answer = as_admin.post(path, json=body)
    assert answer.status_code in (404, 422), answer.text
    assert "audit" not in answer.text


def test_ciphertext_with_invalid_base64url_is_422(as_admin: TestClient, vault: Vault, admin: Principal) -> None:
    vault.create_key(admin, "pay", "encrypt", None, "high", "")
    answer = as_admin.post("/v1/keys/pay/decrypt", json={"ciphertext": "kg:v1:pay:1:@@@"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid"
