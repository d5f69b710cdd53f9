"""The OpenAPI document declares every status the API can answer, with its body.

FastAPI declares only the success and its own 422 shape. keyguard answers every
refusal with one body (``{"error", "reason", "hint"}``, :mod:`keyguard.api.errors`),
and the statuses follow from what an operation is:

* every ``/v1`` operation: 401 (no or a bad token), 403 (refused: role, grant,
  key state, second factor), 422 (a bad body or parameter, SPEC §6; unknown body
  fields included), 429 (too many wrong second-factor codes, with ``Retry-After``),
  503 (the audit log cannot be written: no record, no result);
* with a path parameter, or a body that names keys or clients: 404 (unknown key,
  client, incident);
* every ``/v1`` POST, and the audit verification: 409 (exists already, a
  tampered ciphertext or invalid signature, a broken chain; exit code 5);
* with a request body: 413 (the body is over the configured cap);
* ``/metrics``: 401 and 403; ``/healthz``: 503.

A method a path does not have answers 405 with ``Allow`` (not an operation, so
not in the document). ``tests/api/test_api_schemathesis.py`` holds the app to
this with schemathesis.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from keyguard.api import schemas

_DESCRIPTIONS = {
    401: "No bearer token, or an unknown, expired or revoked one (`WWW-Authenticate: Bearer`)",
    403: "Refused: the role or grants do not allow it, the key version's state forbids it, or MFA is missing",
    404: "Unknown key, client or incident",
    409: "Conflict: exists already, tampered ciphertext, invalid signature or broken audit chain",
    413: "Request body over the configured size cap",
    422: "Invalid body or parameter (unknown fields included); the reason names where and what",
    429: "Too many wrong second-factor codes; retry after `Retry-After` seconds",
    503: "The audit log cannot be written (no record, no result) or the database is unavailable",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer`"}},
    429: {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}},
}
ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}


def statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses an operation can answer (see the module docstring)."""
    if path == "/metrics":
        return {401, 403}
    if path == "/healthz":
        return {503}
    if not path.startswith("/v1"):
        return set()
    found = {401, 403, 422, 429, 503}
    if "{" in path or "requestBody" in operation:
        found.add(404)
    if method == "post" or path == "/v1/audit/verify":
        found.add(409)
    if "requestBody" in operation:
        found.add(413)
    return found


BEARER = {"type": "http", "scheme": "bearer", "description": "`keyguard client token NAME` (or the metrics token)"}


def _declare(spec: dict[str, Any]) -> dict[str, Any]:
    spec.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = BEARER
    components = spec["components"].setdefault("schemas", {})
    for model in (schemas.ErrorOut, schemas.ErrorDetail):
        components[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components[model.__name__].pop("$defs", None)
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            if path.startswith("/v1") or path == "/metrics":
                operation["security"] = [{"bearer": []}]
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)  # FastAPI's own shape; keyguard answers ErrorOut
            for status in sorted(statuses(path, method, operation)):
                if path == "/healthz" and status == 503:
                    continue  # answered with the health body itself
                entry: dict[str, Any] = {
                    "description": _DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": ERROR_REF}},
                }
                if status in _HEADERS:
                    entry["headers"] = _HEADERS[status]
                responses[str(status)] = entry
    return spec


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) declare every error status."""

    generate = app.openapi
    declared: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not declared:
            declared.append(_declare(generate()))
        return declared[0]

    app.openapi = openapi  # type: ignore[method-assign]
