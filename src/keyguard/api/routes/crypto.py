"""``/v1/keys/{name}/…``: encrypt, decrypt, rewrap, data-key, sign, verify."""

from __future__ import annotations

from fastapi import APIRouter

from keyguard.api import schemas
from keyguard.api.convert import b64decode, b64encode, same_key
from keyguard.api.deps import PrincipalDep, VaultDep
from keyguard.crypto import envelope

router = APIRouter(prefix="/v1/keys/{name}", tags=["crypto"])


@router.post("/encrypt", name="encrypt")
def encrypt(name: str, body: schemas.EncryptIn, vault: VaultDep, principal: PrincipalDep) -> schemas.EncryptOut:
    """Encrypt under the active version (``keyguard encrypt``)."""
    plaintext = b64decode(body.plaintext_b64, "plaintext_b64")
    ciphertext, version = vault.encrypt(principal, name, plaintext, body.context)
    return schemas.EncryptOut(ciphertext=ciphertext, version=version, key=name)


@router.post("/decrypt", name="decrypt")
def decrypt(name: str, body: schemas.DecryptIn, vault: VaultDep, principal: PrincipalDep) -> schemas.DecryptOut:
    """Decrypt a ciphertext of this key (``keyguard decrypt``)."""
    same_key(name, envelope.parse(body.ciphertext).key)
    plaintext, key, version = vault.decrypt(principal, body.ciphertext, body.context)
    return schemas.DecryptOut(plaintext_b64=b64encode(plaintext), version=version, key=key)


@router.post("/rewrap", name="rewrap")
def rewrap(name: str, body: schemas.RewrapIn, vault: VaultDep, principal: PrincipalDep) -> schemas.RewrapOut:
    """Re-encrypt under the active version without revealing the plaintext (``keyguard rewrap``)."""
    same_key(name, envelope.parse(body.ciphertext).key)
    ciphertext, version = vault.rewrap(principal, body.ciphertext, body.context)
    return schemas.RewrapOut(ciphertext=ciphertext, version=version, key=name)


@router.post("/data-key", name="data-key")
def data_key(
    name: str, vault: VaultDep, principal: PrincipalDep, body: schemas.DataKeyIn | None = None
) -> schemas.DataKeyOut:
    """A fresh data key, in clear and wrapped (``keyguard data-key``)."""
    dek, wrapped, version = vault.generate_data_key(principal, name, body.context if body else None)
    return schemas.DataKeyOut(plaintext_b64=b64encode(dek), ciphertext=wrapped, version=version, key=name)


@router.post("/sign", name="sign")
def sign(name: str, body: schemas.SignIn, vault: VaultDep, principal: PrincipalDep) -> schemas.SignOut:
    """Sign (or MAC) with the active version (``keyguard sign``)."""
    signature, version = vault.sign(principal, name, b64decode(body.message_b64, "message_b64"))
    return schemas.SignOut(signature_b64=b64encode(signature), version=version, key=name)


@router.post("/verify", name="verify")
def verify(name: str, body: schemas.VerifyIn, vault: VaultDep, principal: PrincipalDep) -> schemas.VerifyOut:
    """Verify a signature; an invalid one answers 409 (``keyguard verify`` exits 5)."""
    message = b64decode(body.message_b64, "message_b64")
    signature = b64decode(body.signature_b64, "signature_b64")
    version = vault.verify(principal, name, message, signature, body.version)
    return schemas.VerifyOut(valid=True, version=version, key=name)
