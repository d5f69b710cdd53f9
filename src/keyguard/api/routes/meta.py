"""Service endpoints: ``/healthz`` and ``/.well-known/jwks.json`` (public), ``/metrics`` (token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import select, text
from starlette.concurrency import run_in_threadpool

from keyguard.api import metrics_access, schemas
from keyguard.api.deps import VaultDep
from keyguard.crypto.publickeys import to_jwk
from keyguard.errors import KeyguardError
from keyguard.store.tables import Key
from keyguard.vault.lifecycle import usable_for
from keyguard.vault.service import Vault

router = APIRouter(tags=["service"])


@router.get("/healthz", name="health")
def health(vault: VaultDep, response: Response) -> schemas.HealthOut:
    """``ok`` when the database answers, else 503."""
    try:
        with vault.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means unhealthy
        response.status_code = 503
        return schemas.HealthOut(status="unavailable", database=vault.engine.dialect.name)
    return schemas.HealthOut(status="ok", database=vault.engine.dialect.name)


@router.get(
    "/metrics",
    name="metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition; needs the metrics token or a client token that may read the audit log."""
    await metrics_access.authorize(request)
    return Response(await run_in_threadpool(generate_latest), media_type=CONTENT_TYPE_LATEST)


def jwks(vault: Vault) -> dict[str, Any]:
    """Public keys of every sign key's usable versions as a JWK set (kid ``<name>:<version>``)."""
    keys: list[dict[str, Any]] = []
    with vault.engine.connect() as conn:
        names = conn.execute(select(Key.name).where(Key.purpose == "sign").order_by(Key.name)).scalars().all()
    for name in names:
        try:
            info = vault.key_info(name)
        except KeyguardError:
            continue
        for number in sorted(info.versions):
            version = info.versions[number]
            if version.public_key is None or not usable_for(version.state, "verify"):
                continue
            if number < info.min_decryption_version:
                continue
            keys.append(to_jwk(version.public_key, kid=f"{name}:{number}"))
    return {"keys": keys}


@router.get("/.well-known/jwks.json", name="jwks")
def jwks_endpoint(vault: VaultDep, request: Request, response: Response) -> dict[str, Any]:
    """JWKS of the access-token signing keys and the sign keys (public material only, so no token is needed)."""
    response.headers["Cache-Control"] = "max-age=60"
    document = jwks(vault)
    document["keys"] = [*request.app.state.jwts.keyring.public_jwks(), *document["keys"]]
    return document
