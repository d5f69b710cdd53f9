"""Figure: what one audited 4 KiB encrypt costs keyguard, by stage, in µs of CPU (median of rounds).

The stages are the fast lane's own steps, timed in-process on the functions a worker
runs (SQLite vault, one key, a cached bearer token): parse (JSON + base64), authenticate
(the front door: one walk over the raw headers, then the token cache), authorise (grants), state check (cached key state
and version choice), crypto (AES-256-GCM and the ciphertext text), audit append (event,
canonical hash, chained insert, commit: amortised over a group-commit batch of 16; CPU
and wall time apart, wall includes the fsync), respond (JSON and the ASGI messages).
What is left of a request (HTTP parsing in httptools, the event loop, request id and
metrics) is what ``bench/vault_http.py`` measures as a whole.

    python bench/vault_stages.py [--rounds 5] [--n 20000]
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request

from keyguard.api.app import create_app
from keyguard.api.deps import authenticate_request, client_of
from keyguard.api.fastpath import _parse, _respond
from keyguard.api.front import caller_headers
from keyguard.audit.log import EventDraft, _Pending
from keyguard.store.db import create_db_engine, migrate
from keyguard.vault.clients import ClientService
from keyguard.vault.principal import local_admin, parse_grants
from keyguard.vault.roots import KeyFileRoot
from keyguard.vault.service import Vault


def per_call(fn: Callable[[], Any], n: int, clock: Callable[[], float] = time.process_time) -> float:
    """µs per call of ``fn`` over ``n`` calls."""
    started = clock()
    for _ in range(n):
        fn()
    return (clock() - started) / n * 1e6


def drive(coro: Any) -> Any:
    """Run a coroutine that never suspends (a cached path) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the coroutine suspended")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="kg-stages-"))
    engine = create_db_engine(f"sqlite:///{home / 'keyguard.db'}")
    migrate(engine)
    vault = Vault.initialize(engine, KeyFileRoot.create(home / "root.key"))
    admin = local_admin()
    vault.create_key(admin, "bench", "encrypt", algorithm="aes256-gcm")
    clients = ClientService(vault)
    clients.create(admin, "svc", "service", parse_grants(["bench:encrypt"]))
    token, _ = clients.issue_token(admin, "svc", timedelta(hours=1))
    app = create_app(vault=vault, watch=False, token_ttl=3600)
    plaintext = os.urandom(4096)
    body = orjson.dumps({"plaintext_b64": base64.b64encode(plaintext).decode()})
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/keys/bench/encrypt",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "app": app,
        "keyguard.request_id": "0" * 32,
    }
    app.state.token_cache.authenticate(token, "127.0.0.1", None, "r")  # now cached
    principal = drive(authenticate_request(Request(scope), second_factor=False))
    info = vault.key_info("bench")
    v = vault._version_for(info, "encrypt", None)
    sealed = vault._seal(info, v, plaintext, None)

    cache = app.state.token_cache

    def front_caller(scope: dict[str, Any]) -> Any:
        """What the front does before the body: one walk over the raw headers, then the token cache."""
        authorization, _length, user_agent, rid, forwarded = caller_headers(scope["headers"])
        source_ip = client_of(scope["client"][0], forwarded, app.state.trusted_proxies)
        return cache.authenticate_cached(authorization.partition(" ")[2].strip(), source_ip, user_agent, rid)

    assert front_caller(scope) is not None

    async def send(_message: Any) -> None:
        return None

    def audit_batch() -> None:
        draft = EventDraft(actor="client:svc", op="encrypt", result="ok", key="bench", version=1, request_id="r")
        vault.audit._write([_Pending(draft) for _ in range(16)])

    stages: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        n = args.n
        timings = {
            "parse (JSON + base64)": per_call(lambda: _parse(body, "encrypt"), n),
            "authenticate (front: raw headers, token cache)": per_call(lambda: front_caller(scope), n),
            "authorise (grants)": per_call(lambda: principal.require("encrypt", "bench"), n),
            "state check (cached key, version)": per_call(
                lambda: vault._version_for(vault.key_info("bench"), "encrypt", None), n
            ),
            "crypto (AES-256-GCM, ciphertext text)": per_call(lambda: vault._seal(info, v, plaintext, None), n),
            "audit append, CPU (per event, batches of 16)": per_call(audit_batch, n // 100) / 16,
            "audit append, wall incl. fsync (per event)": per_call(audit_batch, n // 100, time.perf_counter) / 16,
            "respond (JSON, ASGI messages)": per_call(
                lambda: drive(_respond(send, 200, {"ciphertext": sealed, "version": 1, "key": "bench"})), n
            ),
        }
        for name, value in timings.items():
            stages.setdefault(name, []).append(value)
    print(f"audited 4 KiB encrypt, per request by stage (in-process, {args.rounds} rounds; µs min / median / max)")
    total = 0.0
    for name, values in stages.items():
        if "wall" not in name:
            total += statistics.median(values)
        print(f"  {name:<48}{min(values):>8.1f}{statistics.median(values):>8.1f}{max(values):>8.1f}")
    print(f"  {'sum of the CPU stages (medians)':<48}{total:>16.1f}")
    vault.close()
    engine.dispose()


if __name__ == "__main__":
    main()
