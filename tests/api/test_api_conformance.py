"""The OpenAPI document is the contract (issue 12 point 12): every status declared with
the error body, 405 with ``Allow``, no token → 401 everywhere, unknown body fields refused."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault

METHODS = ("get", "post", "put", "patch", "delete")
SAMPLE = {"name": "pay", "version": "1", "action": "disable", "client": "root", "incident_id": "1"}


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def test_every_error_status_is_declared_with_the_error_body(as_admin: TestClient) -> None:
    spec = as_admin.get("/openapi.json").json()
    assert "ErrorOut" in spec["components"]["schemas"] and "HTTPValidationError" not in spec["components"]["schemas"]
    for path, method, op in _operations(spec):
        declared = set(op["responses"])
        if path.startswith("/v1"):
            assert {"401", "403", "422", "503"} <= declared, (method, path, declared)
            if "{" in path:
                assert "404" in declared, (method, path)
            if method == "post":
                assert "409" in declared, (method, path)
            if "requestBody" in op:
                assert "413" in declared, (method, path)
        for status, response in op["responses"].items():
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (method, path, status)
    metrics = spec["paths"]["/metrics"]["get"]["responses"]
    assert {"200", "401", "403"} <= set(metrics)
    for route in ("/v1/keys/{name}/encrypt", "/v1/keys/{name}/decrypt"):
        assert {"403", "404", "409", "413", "422"} <= set(spec["paths"][route]["post"]["responses"])


def test_405_carries_allow_with_every_method_of_the_path(as_admin: TestClient) -> None:
    spec = as_admin.get("/openapi.json").json()
    checked = 0
    for path, ops in spec["paths"].items():
        url = path.format(**SAMPLE)
        declared = {m.upper() for m in ops}
        for method in METHODS:
            if method in ops:
                continue
            r = as_admin.request(method.upper(), url)
            if r.status_code != 405:
                # another path template may serve this method on the same URL
                # (POST /v1/incidents/respond beside GET /v1/incidents/{incident_id})
                assert r.status_code < 500, (method, url, r.status_code)
                continue
            allow = {m.strip() for m in r.headers["allow"].split(",")}
            assert declared <= allow, (method, url, allow)
            assert method.upper() not in allow
            assert r.json()["error"] == "method_not_allowed"
            checked += 1
    assert checked > 50
    r = as_admin.delete("/v1/incidents/respond")
    assert r.status_code == 405 and {"GET", "POST"} <= set(r.headers["allow"].replace(" ", "").split(","))


def test_no_token_is_401_on_every_v1_operation(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    for path, method, _op in _operations(spec):
        if not path.startswith("/v1"):
            continue
        r = api.request(method.upper(), path.format(**SAMPLE), json={})
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["www-authenticate"] == "Bearer" and r.json()["error"] == "unauthenticated"


def test_unknown_body_fields_are_refused(as_admin: TestClient, vault: Vault, admin: Principal) -> None:
    vault.create_key(admin, "pay", "encrypt")
    spec = as_admin.get("/openapi.json").json()
    bodies = 0
    for path, method, op in _operations(spec):
        if "requestBody" not in op:
            continue
        r = as_admin.request(method.upper(), path.format(**SAMPLE), json={"surprise": 1})
        assert r.status_code == 422, (method, path, r.status_code)
        types = {d["type"] for d in r.json()["detail"]}
        assert "extra_forbidden" in types, (method, path, types)
        bodies += 1
    assert bodies >= 15


def test_a_body_that_is_not_json_is_422_and_audited(as_admin: TestClient, events) -> None:  # type: ignore[no-untyped-def]
    r = as_admin.post("/v1/keys", content=b"\xff\xfe{", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid"
    assert any("422" in (e["reason"] or "") for e in events(op="request", result="denied"))


def test_an_absurd_token_lifetime_is_422_not_500(as_admin: TestClient) -> None:
    # found by schemathesis: a lifetime beyond timedelta's range overflowed into a 500
    r = as_admin.post("/v1/clients/root/token", json={"ttl_seconds": 10**17})
    assert r.status_code == 422 and r.json()["reason"].startswith("ttl_seconds: ")


def test_body_fields_are_not_coerced(as_admin: TestClient, vault: Vault, admin: Principal) -> None:
    # found by schemathesis: ``true`` was taken for a lifetime of one second, "2" for a version
    vault.create_key(admin, "pay", "encrypt")
    assert as_admin.post("/v1/clients/root/token", json={"ttl_seconds": True}).status_code == 422
    assert as_admin.post("/v1/keys/pay/config", json={"min_decryption_version": "1"}).status_code == 422
    assert as_admin.post("/v1/keys/pay/config", json={"min_decryption_version": 1}).status_code == 200


def test_bearer_security_is_declared(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, _method, op in _operations(spec):
        secured = path.startswith("/v1") or path == "/metrics"
        assert (op.get("security") == [{"bearer": []}]) == secured, path


def test_unknown_query_parameters_are_refused(as_admin: TestClient, events) -> None:  # type: ignore[no-untyped-def]
    # found by schemathesis: GET /v1/audit?=0.0 answered 200
    assert as_admin.get("/v1/audit", params={"limit": 5}).status_code == 200
    for params in ({"": "0.0"}, {"limits": "5"}, {"limit": "5", "surprise": "1"}):
        r = as_admin.get("/v1/audit", params=params)
        assert r.status_code == 422 and "unknown query parameter" in r.json()["reason"], params
    assert as_admin.get("/v1/keys/pay/public", params={"format": "pem", "x": "1"}).status_code == 422
    r = as_admin.get("/v1/audit", params=[("actor", "a"), ("actor", "b")])  # was: the last one, silently
    assert r.status_code == 422 and "more than once" in r.json()["reason"]
    assert events(op="request", result="denied")
