"""Prometheus metrics of the API, and the ASGI middleware that counts requests.

The middleware also gives every request an id: ``X-Request-Id`` when the caller
sent a sane one, else a fresh one; it is echoed on the response and written to
the audit event. Other modules' metrics (``keyguard.monitor.metrics``) live in
the same default registry and are exposed by ``/metrics`` too.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

try:  # register the monitor's counters too, when that module exists
    import keyguard.monitor.metrics  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
except ImportError:  # pragma: no cover - depends on what else is installed
    pass

REQUESTS = Counter(
    "keyguard_http_requests_total",
    "HTTP requests by route, method and status",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "keyguard_http_request_duration_seconds",
    "HTTP request latency by route",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
VAULT_OPS = Counter(
    "keyguard_vault_operations_total",
    "Vault operations through the API by operation, key and result",
    ["op", "key", "result"],
)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Route names that are vault operations on a key (the ``name`` path parameter).
VAULT_ROUTES = frozenset(
    {
        "encrypt",
        "decrypt",
        "rewrap",
        "data-key",
        "sign",
        "verify",
        "export-public",
        "key.rotate",
        "key.disable",
        "key.enable",
        "key.compromise",
        "key.destroy",
        "key.config",
        "key.import",
        "key.read",
        "key.version",
    }
)


def result_of(status: int) -> str:
    """The audit-style result of an HTTP status."""
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "denied"
    return "error"


class RequestMiddleware:
    """Pure ASGI middleware: request ids and request/operation counters."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                text = value.decode("latin-1")
                if _REQUEST_ID.match(text):
                    rid = text
                break
        if not rid:
            rid = os.urandom(16).hex()  # as random as uuid4, without building a UUID object
        scope["keyguard.request_id"] = rid
        status = 500
        header = (b"x-request-id", rid.encode("latin-1"))

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self._observe(scope, status, time.perf_counter() - started)

    @staticmethod
    def _observe(scope: Scope, status: int, elapsed: float) -> None:
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        op = getattr(route, "name", None)
        key = ""
        if op in VAULT_ROUTES and status not in (404, 422):
            # Unknown or malformed names would grow the label set without bound.
            key = str(scope.get("path_params", {}).get("name", ""))
        request, latency, vault_op = _children(template, scope["method"], status, op, key)
        request.inc()
        latency.observe(elapsed)
        if vault_op is not None:
            vault_op.inc()


_Children = tuple[Counter, Histogram, Counter | None]
# (route, method, status, operation, key) -> the metrics' label children. ``labels()``
# validates and looks its arguments up under a lock on every call; the children are
# kept by the registry anyway, so remembering them adds no label set of its own.
_CHILDREN: dict[tuple[str, str, int, str | None, str], _Children] = {}


def _children(template: str, method: str, status: int, op: str | None, key: str) -> _Children:
    """The label children of one request's metrics."""
    label = (template, method, status, op, key)
    found = _CHILDREN.get(label)
    if found is None:
        vault_op = VAULT_OPS.labels(op, key, result_of(status)) if op in VAULT_ROUTES else None
        found = (REQUESTS.labels(template, method, str(status)), LATENCY.labels(template), vault_op)
        _CHILDREN[label] = found
    return found
