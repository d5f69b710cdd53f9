"""``/v1/keys``: create, import, list, show, rotate, version states, config, public part."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, status

from keyguard.api import schemas
from keyguard.api.convert import b64decode, key_out
from keyguard.api.deps import PrincipalDep, VaultDep
from keyguard.config import MAX_VERSION
from keyguard.crypto.publickeys import to_jwk, to_pem
from keyguard.vault.lifecycle import VersionState

router = APIRouter(prefix="/v1/keys", tags=["keys"])

_TARGET = {
    "disable": VersionState.DISABLED,
    "enable": VersionState.ENABLED,
    "compromise": VersionState.COMPROMISED,
    "destroy": VersionState.DESTROYED,
}


@router.post("", status_code=status.HTTP_201_CREATED, name="key.create")
def create_key(body: schemas.KeyCreate, vault: VaultDep, principal: PrincipalDep) -> schemas.KeyOut:
    """Create a key with version 1 active (``keyguard key create``)."""
    info = vault.create_key(
        principal,
        body.name,
        body.purpose,
        algorithm=body.algorithm,
        tier=body.tier,
        owner=body.owner,
        tags=body.tags,
        rotation_days=body.rotation_days,
    )
    return key_out(info)


@router.get("", name="key.list")
def list_keys(vault: VaultDep, principal: PrincipalDep) -> list[schemas.KeyOut]:
    """Every key, metadata only (``keyguard key list``)."""
    with vault.audited(principal, "key.list", None):
        infos = vault.list_keys(principal)
    return [key_out(info) for info in infos]


@router.get("/{name}", name="key.read")
def show_key(name: schemas.KeyName, vault: VaultDep, principal: PrincipalDep) -> schemas.KeyOut:
    """One key and its versions (``keyguard key show``)."""
    with vault.audited(principal, "key.read", name):
        principal.require("key.read", name)
        info = vault.key_info(name)
    return key_out(info)


@router.post("/{name}/import", status_code=status.HTTP_201_CREATED, name="key.import")
def import_key(
    name: schemas.KeyName, body: schemas.KeyImport, vault: VaultDep, principal: PrincipalDep
) -> schemas.KeyOut:
    """Bring existing material under management (``keyguard key import``)."""
    material = b64decode(body.material_b64, "material_b64")
    info = vault.import_key(
        principal,
        name,
        material,
        body.purpose,
        tier=body.tier,
        algorithm=body.algorithm,
        owner=body.owner,
        tags=body.tags,
    )
    return key_out(info)


@router.post("/{name}/rotate", name="key.rotate")
def rotate_key(
    name: schemas.KeyName, vault: VaultDep, principal: PrincipalDep, body: schemas.KeyRotate | None = None
) -> schemas.KeyOut:
    """Add a new active version, optionally with another algorithm (``keyguard key rotate``)."""
    return key_out(vault.rotate(principal, name, body.algorithm if body else None))


@router.post("/{name}/versions/{version}/{action}", name="key.version")
def change_version(
    name: schemas.KeyName,
    version: Annotated[int, Path(ge=1, le=MAX_VERSION)],
    action: Literal["disable", "enable", "compromise", "destroy"],
    vault: VaultDep,
    principal: PrincipalDep,
    body: schemas.VersionChange | None = None,
) -> schemas.KeyOut:
    """Disable, enable, compromise or destroy a version (``keyguard key <action> --version N``)."""
    info = vault.set_state(principal, name, version, _TARGET[action], body.reason if body else None)
    return key_out(info)


@router.post("/{name}/config", name="key.config")
def configure_key(
    name: schemas.KeyName, body: schemas.KeyConfig, vault: VaultDep, principal: PrincipalDep
) -> schemas.KeyOut:
    """Set ``min_decryption_version``."""
    return key_out(vault.set_min_decryption_version(principal, name, body.min_decryption_version))


@router.get(
    "/{name}/public",
    name="export-public",
    response_model=None,
    responses={200: {"description": "PEM document ({key, version, algorithm, pem}) or a JWK"}},
)
def public_key(
    name: schemas.KeyName,
    vault: VaultDep,
    principal: PrincipalDep,
    format: Literal["pem", "jwk"] = "pem",  # noqa: A002 - the query parameter's public name
    version: int | None = Query(default=None, ge=1, le=MAX_VERSION),
) -> dict[str, Any]:
    """The public key of an asymmetric key version (``keyguard key export-public``)."""
    der, number, algorithm = vault.public_key(principal, name, version)
    if format == "jwk":
        return to_jwk(der, kid=f"{name}:{number}")
    out = schemas.PublicKeyOut(key=name, version=number, algorithm=algorithm, pem=to_pem(der).decode("ascii"))
    return out.model_dump()
