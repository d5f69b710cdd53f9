"""JWT access tokens: issue and verify rates in process, and API throughput with JWT auth beside opaque tokens.

In process (min/median/max over ``--rounds``):

* issue: ``POST /v1/auth/token``'s work without HTTP (``JwtService.exchange``: the
  opaque credential looked up, an EdDSA signature, one durable audit event) and
  signing alone (PyJWT ``encode`` with the current key);
* verify: ``JwtService.verify`` (signature, claims, the client's status and grants
  from the database), the signature alone (PyJWT ``decode``), and beside them the
  opaque token lookup (``ClientService.authenticate``: one indexed read) — the anchor.

API (same run, same app, rounds interleaved): an in-process ASGI client (httpx
``ASGITransport``, ``--concurrency`` requests in flight; no sockets, no uvicorn)
calling the encrypt fast lane (``POST /v1/keys/bench/encrypt``, 64 bytes) and a
routed call (``GET /v1/keys/bench``), once with the opaque token and once with a
JWT, with the token cache on (0.5 s, the default) and off (every request verifies).

    .venv/bin/python bench/jwt_auth.py [--rounds 3] [--seconds 3] [--concurrency 16] [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt

from keyguard.api import create_app
from keyguard.store.db import create_db_engine, migrate
from keyguard.vault.clients import ClientService
from keyguard.vault.jwt_config import JwtConfig
from keyguard.vault.jwt_tokens import JwtService
from keyguard.vault.principal import local_admin, parse_grants
from keyguard.vault.roots import KeyFileRoot
from keyguard.vault.service import Vault

BODY = {"plaintext_b64": base64.b64encode(b"x" * 64).decode()}


def rate(n: int, work: Callable[[], object]) -> float:
    started = time.perf_counter()
    for _ in range(n):
        work()
    return n / (time.perf_counter() - started)


def summary(values: list[float]) -> str:
    return f"{min(values):>9,.0f} {statistics.median(values):>9,.0f} {max(values):>9,.0f}"


def line(label: str, values: list[float]) -> None:
    print(f"  {label:<58} {summary(values)}")


async def throughput(app: Any, path: str, method: str, token: str, seconds: float, concurrency: int) -> float:
    transport = httpx.ASGITransport(app=app, client=("192.0.2.10", 5000))
    headers = {"Authorization": f"Bearer {token}"}
    done = 0
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                if method == "POST":
                    r = await client.post(path, json=BODY, headers=headers)
                else:
                    r = await client.get(path, headers=headers)
                if r.status_code != 200:
                    raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--issue", type=int, default=300, help="exchanges per round (each audited)")
    parser.add_argument("--verify", type=int, default=2000, help="verifications per round")
    parser.add_argument("--db", default=None, help="SQLAlchemy URL (default: a fresh SQLite file)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="kg-bench-jwt-"))
    engine = create_db_engine(args.db or f"sqlite:///{home / 'keyguard.db'}")
    migrate(engine)
    vault = Vault.initialize(engine, KeyFileRoot.create(home / "root.key"))
    admin = local_admin()
    vault.create_key(admin, "bench", "encrypt", algorithm="aes256-gcm")
    clients = ClientService(vault, max_ttl=timedelta(hours=2))
    clients.create(admin, "bench-svc", "operator", parse_grants(["bench:encrypt"]))
    credential, _ = clients.issue_token(admin, "bench-svc", timedelta(hours=2))
    jwts = JwtService(clients, JwtConfig())
    token = jwts.exchange(credential).token
    kid, algorithm, private = jwts.keyring.signer()
    public = jwts.keyring.verification_key(kid)
    assert public is not None
    claims = pyjwt.decode(token, options={"verify_signature": False})

    print(f"keyguard JWT auth, {engine.dialect.name}, {algorithm} signing key, {args.rounds} rounds (min median max)")
    print("in process, operations/s:")
    results: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for label, n, work in (
            ("issue: exchange (credential lookup, sign, audit event)", args.issue, lambda: jwts.exchange(credential)),
            ("issue: sign only (PyJWT encode)", args.verify, lambda: pyjwt.encode(claims, private, algorithm)),
            ("verify: JwtService.verify (signature, claims, client row)", args.verify, lambda: jwts.verify(token)),
            (
                "verify: signature only (PyJWT decode)",
                args.verify,
                lambda: pyjwt.decode(token, public.public, algorithms=[algorithm], audience="keyguard"),
            ),
            (
                "anchor: opaque token lookup (ClientService.authenticate)",
                args.verify,
                lambda: clients.authenticate(credential),
            ),
        ):
            results.setdefault(label, []).append(rate(n, work))
    for label, values in results.items():
        line(label, values)

    print(f"API, in-process ASGI client (httpx.ASGITransport), {args.concurrency} in flight, requests/s:")
    api_results: dict[str, list[float]] = {}
    apps = {
        "cache 0.5 s": create_app(vault=vault, watch=False),
        "no cache": create_app(vault=vault, watch=False, token_ttl=0.0),
    }
    bearer = {"opaque": credential, "jwt": token}
    calls = (("POST", "/v1/keys/bench/encrypt", "encrypt fast lane"), ("GET", "/v1/keys/bench", "GET key (routed)"))
    for _ in range(args.rounds):
        for cache, app in apps.items():
            for method, path, what in calls:
                for kind in ("opaque", "jwt"):
                    # a fresh JWT per round so none expires during a long run
                    bearer["jwt"] = jwts.exchange(credential).token
                    value = asyncio.run(throughput(app, path, method, bearer[kind], args.seconds, args.concurrency))
                    api_results.setdefault(f"{what}, {cache}, {kind}", []).append(value)
    for label, values in api_results.items():
        line(label, values)
    print("(figures from a shared, loaded 2-core machine)")
    vault.close()
    engine.dispose()


if __name__ == "__main__":
    main()
