"""A root of trust held in an HSM through PKCS#11 (SoftHSM2 in tests).

The barrier key is wrapped with AES-256-GCM *inside the token* by a key that is
``SENSITIVE`` and not ``EXTRACTABLE``: the key-encryption key never leaves the
HSM. The wrapped form is ``nonce (12 bytes) || ciphertext || tag`` with the
associated data ``b"keyguard-root-v1"``.

Configuration comes from the environment (SPEC §2): ``KEYGUARD_PKCS11_MODULE``
(the ``.so``), ``KEYGUARD_PKCS11_TOKEN`` (token label) and
``KEYGUARD_PKCS11_PIN`` (user PIN). Every failure — missing module, unknown
token, wrong PIN, missing or wrong key — is a :class:`RootKeyError` (exit 5)
with a message that names what is wrong and never the PIN.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from keyguard.errors import RootKeyError

_AAD = b"keyguard-root-v1"
_NONCE = 12
DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
T = TypeVar("T")
_lock = threading.Lock()


def _env_config(env: Mapping[str, str]) -> tuple[str, str, str]:
    module = env.get("KEYGUARD_PKCS11_MODULE") or ""
    token = env.get("KEYGUARD_PKCS11_TOKEN") or ""
    pin = env.get("KEYGUARD_PKCS11_PIN") or ""
    missing = [
        name
        for name, value in (
            ("KEYGUARD_PKCS11_MODULE", module),
            ("KEYGUARD_PKCS11_TOKEN", token),
            ("KEYGUARD_PKCS11_PIN", pin),
        )
        if not value
    ]
    if missing:
        raise RootKeyError(
            "the PKCS#11 root of trust is not configured",
            hint="set " + ", ".join(missing),
        )
    return module, token, pin


class Pkcs11Root:
    """AES-256-GCM key wrapping by a non-extractable key inside a PKCS#11 token."""

    kind = "pkcs11"

    def __init__(self, module: str, token: str, pin: str, label: str) -> None:
        self.module = module
        self.token = token
        self.label = label
        self._pin = pin
        self._lib = self._load(module)

    # ------------------------------------------------------------------ construction
    @classmethod
    def create_from_env(cls, env: Mapping[str, str] | None = None) -> Pkcs11Root:
        """Generate a new root key (unique label) in the configured token."""
        env = os.environ if env is None else env
        module, token, pin = _env_config(env)
        root = cls(module, token, pin, f"keyguard-root-{secrets.token_hex(6)}")
        root._generate()
        return root

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, label: str = "keyguard-root") -> Pkcs11Root:
        """Open the existing root key ``label`` in the configured token (checked now)."""
        env = os.environ if env is None else env
        module, token, pin = _env_config(env)
        root = cls(module, token, pin, label)
        root._with_key(lambda _key: None)
        return root

    # ------------------------------------------------------------------ protocol
    def params(self) -> dict[str, Any]:
        """Public parameters stored beside the wrapped key."""
        return {"label": self.label, "token": self.token}

    def wrap(self, key: bytes) -> bytes:
        """Wrap ``key`` with AES-256-GCM inside the token."""
        from pkcs11 import Mechanism
        from pkcs11.mechanisms import GCMParams

        nonce = os.urandom(_NONCE)

        def run(kek: Any) -> bytes:
            out = kek.encrypt(key, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, _AAD, 128))
            return bytes(out)

        return nonce + self._with_key(run)

    def unwrap(self, wrapped: bytes) -> bytes:
        """Unwrap, or raise :class:`RootKeyError` when the token's key does not open it."""
        from pkcs11 import Mechanism
        from pkcs11.exceptions import PKCS11Error
        from pkcs11.mechanisms import GCMParams

        if len(wrapped) <= _NONCE + 16:
            raise RootKeyError("the wrapped root key is truncated", hint="the database was altered")
        nonce, body = wrapped[:_NONCE], wrapped[_NONCE:]

        def run(kek: Any) -> bytes:
            try:
                out = kek.decrypt(body, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(nonce, _AAD, 128))
            except PKCS11Error:
                raise RootKeyError(
                    f"wrong HSM key: {self.label!r} in token {self.token!r} does not open this vault",
                    hint="check KEYGUARD_PKCS11_TOKEN and the token's contents",
                ) from None
            return bytes(out)

        return self._with_key(run)

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _load(module: str) -> Any:
        if not os.path.exists(module):
            raise RootKeyError(f"PKCS#11 module {module} not found", hint="set KEYGUARD_PKCS11_MODULE")
        try:
            import pkcs11
        except ImportError:
            raise RootKeyError("python-pkcs11 is not installed", hint="pip install 'keyguard[hsm]'") from None
        try:
            with _lock:
                return pkcs11.lib(module)
        except Exception as exc:  # noqa: BLE001 - any loader failure is a root failure
            raise RootKeyError(
                f"cannot load PKCS#11 module {module}: {type(exc).__name__}",
                hint="check KEYGUARD_PKCS11_MODULE",
            ) from None

    @contextmanager
    def _session(self, rw: bool = False) -> Iterator[Any]:
        from pkcs11.exceptions import (
            MultipleTokensReturned,
            NoSuchToken,
            PinIncorrect,
            PinInvalid,
            PinLenRange,
            PinLocked,
            PKCS11Error,
        )

        try:
            token = self._lib.get_token(token_label=self.token)
        except NoSuchToken:
            raise RootKeyError(f"PKCS#11 token {self.token!r} not found", hint="check KEYGUARD_PKCS11_TOKEN") from None
        except MultipleTokensReturned:
            raise RootKeyError(
                f"several PKCS#11 tokens are labelled {self.token!r}",
                hint="give them unique labels",
            ) from None
        except PKCS11Error as exc:
            raise RootKeyError(f"PKCS#11 token lookup failed: {type(exc).__name__}", hint="check the HSM") from None
        try:
            session = token.open(user_pin=self._pin, rw=rw)
        except (PinIncorrect, PinInvalid, PinLenRange):
            raise RootKeyError(
                f"wrong PIN for PKCS#11 token {self.token!r}", hint="check KEYGUARD_PKCS11_PIN"
            ) from None
        except PinLocked:
            raise RootKeyError(
                f"the PIN of PKCS#11 token {self.token!r} is locked", hint="ask the HSM officer"
            ) from None
        except PKCS11Error as exc:
            raise RootKeyError(
                f"cannot open PKCS#11 token {self.token!r}: {type(exc).__name__}",
                hint="check the HSM",
            ) from None
        try:
            yield session
        finally:
            try:
                session.close()
            except PKCS11Error:  # pragma: no cover - closing a dead session
                pass

    def _with_key(self, action: Callable[[Any], T]) -> T:
        from pkcs11 import KeyType, ObjectClass
        from pkcs11.exceptions import MultipleObjectsReturned, NoSuchKey, PKCS11Error

        with self._session() as session:
            try:
                kek = session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=self.label)
            except NoSuchKey:
                raise RootKeyError(
                    f"root key {self.label!r} not found in PKCS#11 token {self.token!r}",
                    hint="wrong token, or the key was destroyed",
                ) from None
            except MultipleObjectsReturned:
                raise RootKeyError(f"several keys are labelled {self.label!r} in token {self.token!r}") from None
            try:
                return action(kek)
            except RootKeyError:
                raise
            except PKCS11Error as exc:
                raise RootKeyError(f"PKCS#11 operation failed: {type(exc).__name__}", hint="check the HSM") from None

    def _generate(self) -> None:
        from pkcs11 import Attribute, KeyType
        from pkcs11.exceptions import PKCS11Error

        with self._session(rw=True) as session:
            try:
                session.generate_key(
                    KeyType.AES,
                    256,
                    label=self.label,
                    store=True,
                    template={
                        Attribute.SENSITIVE: True,
                        Attribute.EXTRACTABLE: False,
                        Attribute.ENCRYPT: True,
                        Attribute.DECRYPT: True,
                        Attribute.TOKEN: True,
                        Attribute.PRIVATE: True,
                    },
                )
            except PKCS11Error as exc:
                raise RootKeyError(
                    f"cannot generate the root key in token {self.token!r}: {type(exc).__name__}",
                    hint="check the HSM",
                ) from None


__all__ = ["DEFAULT_MODULE", "Pkcs11Root"]
