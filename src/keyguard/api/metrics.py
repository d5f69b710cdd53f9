"""Prometheus metrics of the API, and the ASGI middleware that counts requests.

The middleware also gives every request an id: ``X-Request-Id`` when the caller
sent a sane one, else a fresh one; it is echoed on the response and written to
the audit event. Other modules' metrics (``keyguard.monitor.metrics``) live in
the same default registry and are exposed by ``/metrics`` too.

Every label is bounded whatever callers send: route *templates* (never raw
paths), a fixed set of methods, status *classes* (``2xx`` … ``5xx``), and no key
or client names. A label value an attacker can choose would grow the registry,
and every scrape, without limit, and would publish names to whoever scrapes.
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
    "HTTP requests by route template, method and status class",
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
    "Vault operations through the API by operation and result",
    ["op", "result"],
)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
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


def status_class(status: int) -> str:
    """``2xx`` … ``5xx`` (the label of a status: a bounded set)."""
    return f"{min(max(status // 100, 1), 5)}xx"


def result_of(status: int) -> str:
    """The audit-style result of an HTTP status."""
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "denied"
    return "error"


_IDS_PER_DRAW = 256
_ids: list[str] = []
os.register_at_fork(after_in_child=_ids.clear)  # a forked worker must not hand out its parent's ids


def new_request_id() -> str:
    """32 random hex digits (as random as uuid4); ``os.urandom`` is called once per 256 ids, not per request."""
    while True:
        try:
            return _ids.pop()
        except IndexError:
            pool = os.urandom(16 * _IDS_PER_DRAW).hex()
            _ids.extend(pool[i : i + 32] for i in range(0, len(pool), 32))


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's ``X-Request-Id`` when it is sane (the first one), else a fresh id."""
    for name, value in headers:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if REQUEST_ID.match(text):
                return text
            break
    return new_request_id()


class RequestMiddleware:
    """Pure ASGI middleware: request ids and request/operation counters."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid: str = scope.get("keyguard.request_id") or request_id_of(scope["headers"])
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
            self.observe(scope, status, time.perf_counter() - started)

    @staticmethod
    def observe(scope: Scope, status: int, elapsed: float) -> None:
        """Count one answered request (its route, method and status class) and its latency."""
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        op = getattr(route, "name", None)
        method = scope["method"] if scope["method"] in METHODS else "other"
        request, latency, vault_op = _children(template, method, status_class(status), op, result_of(status))
        request.inc()
        latency.observe(elapsed)
        if vault_op is not None:
            vault_op.inc()


_Children = tuple[Counter, Histogram, Counter | None]
# (route, method, status class, operation, result) -> the metrics' label children.
# ``labels()`` validates and looks its arguments up under a lock on every call; the
# children are kept by the registry anyway, so remembering them adds no label set.
_CHILDREN: dict[tuple[str, str, str, str | None, str], _Children] = {}


def _children(template: str, method: str, status: str, op: str | None, result: str) -> _Children:
    """The label children of one request's metrics."""
    label = (template, method, status, op, result)
    found = _CHILDREN.get(label)
    if found is None:
        vault_op = VAULT_OPS.labels(op, result) if op in VAULT_ROUTES else None
        found = (REQUESTS.labels(template, method, status), LATENCY.labels(template), vault_op)
        _CHILDREN[label] = found
    return found
