"""``/v1/keys/{name}/…``: encrypt, decrypt, rewrap, data-key, sign, verify."""

from __future__ import annotations

from fastapi import APIRouter

from keyguard.api import schemas
from keyguard.api.calls import vault_call
from keyguard.api.convert import b64decode, b64encode, same_key
from keyguard.api.deps import PrincipalDep, VaultDep
from keyguard.crypto import envelope

router = APIRouter(prefix="/v1/keys/{name}", tags=["crypto"])


@router.post("/encrypt", name="encrypt")
async def encrypt(
    name: schemas.KeyName, body: schemas.EncryptIn, vault: VaultDep, principal: PrincipalDep
) -> schemas.EncryptOut:
    """Encrypt under the active version (``keyguard encrypt``)."""
    plaintext = b64decode(body.plaintext_b64, "plaintext_b64")
    ciphertext, version = await vault_call(vault, name, lambda: vault.encrypt(principal, name, plaintext, body.context))
    return schemas.EncryptOut(ciphertext=ciphertext, version=version, key=name)


@router.post("/decrypt", name="decrypt")
async def decrypt(
    name: schemas.KeyName, body: schemas.DecryptIn, vault: VaultDep, principal: PrincipalDep
) -> schemas.DecryptOut:
    """Decrypt a ciphertext of this key (``keyguard decrypt``)."""
    same_key(name, envelope.parse(body.ciphertext).key)
    plaintext, key, version = await vault_call(
        vault, name, lambda: vault.decrypt(principal, body.ciphertext, body.context)
    )
    return schemas.DecryptOut(plaintext_b64=b64encode(plaintext), version=version, key=key)


@router.post("/rewrap", name="rewrap")
async def rewrap(
    name: schemas.KeyName, body: schemas.RewrapIn, vault: VaultDep, principal: PrincipalDep
) -> schemas.RewrapOut:
    """Re-encrypt under the active version without revealing the plaintext (``keyguard rewrap``)."""
    same_key(name, envelope.parse(body.ciphertext).key)
    ciphertext, version = await vault_call(vault, name, lambda: vault.rewrap(principal, body.ciphertext, body.context))
    return schemas.RewrapOut(ciphertext=ciphertext, version=version, key=name)


@router.post("/data-key", name="data-key")
async def data_key(
    name: schemas.KeyName, vault: VaultDep, principal: PrincipalDep, body: schemas.DataKeyIn | None = None
) -> schemas.DataKeyOut:
    """A fresh data key, in clear and wrapped (``keyguard data-key``)."""
    context = body.context if body else None
    dek, wrapped, version = await vault_call(vault, name, lambda: vault.generate_data_key(principal, name, context))
    return schemas.DataKeyOut(plaintext_b64=b64encode(dek), ciphertext=wrapped, version=version, key=name)


@router.post("/sign", name="sign")
async def sign(
    name: schemas.KeyName, body: schemas.SignIn, vault: VaultDep, principal: PrincipalDep
) -> schemas.SignOut:
    """Sign (or MAC) with the active version (``keyguard sign``)."""
    message = b64decode(body.message_b64, "message_b64")
    signature, version = await vault_call(vault, name, lambda: vault.sign(principal, name, message))
    return schemas.SignOut(signature_b64=b64encode(signature), version=version, key=name)


@router.post("/verify", name="verify")
async def verify(
    name: schemas.KeyName, body: schemas.VerifyIn, vault: VaultDep, principal: PrincipalDep
) -> schemas.VerifyOut:
    """Verify a signature; an invalid one answers 409 (``keyguard verify`` exits 5)."""
    message = b64decode(body.message_b64, "message_b64")
    signature = b64decode(body.signature_b64, "signature_b64")
    version = await vault_call(vault, name, lambda: vault.verify(principal, name, message, signature, body.version))
    return schemas.VerifyOut(valid=True, version=version, key=name)
