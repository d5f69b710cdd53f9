"""Cryptographic operations under managed keys: encrypt, decrypt, rewrap, data keys, sign and verify."""

from __future__ import annotations

from typing import Any

from keyguard.crypto import algorithms as alg
from keyguard.crypto import envelope
from keyguard.errors import InvalidSignature, KeyStateError, NotFoundError, UsageError
from keyguard.vault.core import VaultCore
from keyguard.vault.lifecycle import BLOCKED, VersionState, usable_for
from keyguard.vault.model import KeyInfo, VersionInfo
from keyguard.vault.principal import Principal


class OperationsMixin(VaultCore):
    """Every use of a key's material, each one audited."""

    def encrypt(
        self,
        principal: Principal,
        name: str,
        plaintext: bytes,
        context: dict[str, Any] | None = None,
    ) -> tuple[str, int]:
        """Encrypt under the active version; returns ``(ciphertext text, version)``."""
        with self.audited(principal, "encrypt", name) as ctx:
            info, v = self._active(principal, "encrypt", name, ctx, "encrypt")
            sealed = self._seal(info, v, plaintext, context)
        return sealed, v.version

    def decrypt(
        self,
        principal: Principal,
        ciphertext: str,
        context: dict[str, Any] | None = None,
        *,
        op: str = "decrypt",
    ) -> tuple[bytes, str, int]:
        """Decrypt; returns ``(plaintext, key name, version)``."""
        parsed = envelope.parse(ciphertext)
        with self.audited(principal, op, parsed.key, parsed.version) as ctx:
            principal.require(op, parsed.key)
            plaintext = self._open(parsed, context, op)
            ctx["version"] = parsed.version
        return plaintext, parsed.key, parsed.version

    def _open(
        self,
        parsed: envelope.Ciphertext,
        context: dict[str, Any] | None,
        op: str,
        *,
        allow_blocked: bool = False,
    ) -> bytes:
        info = self.key_info(parsed.key)
        self._require_purpose(info, "encrypt")
        if allow_blocked:
            v = info.versions.get(parsed.version)
            if v is None:
                raise NotFoundError(f"key {info.name!r} has no version {parsed.version}")
            if v.state == VersionState.DESTROYED:
                raise KeyStateError(info.name, v.version, v.state, op)
        else:
            v = self._version_for(info, "decrypt", parsed.version)
        return self._loaded(info, v).decrypt(
            parsed.payload, envelope.associated_data(parsed.key, parsed.version, context)
        )

    def rewrap(self, principal: Principal, ciphertext: str, context: dict[str, Any] | None = None) -> tuple[str, int]:
        """Re-encrypt a ciphertext under the active version without revealing the plaintext.

        Admins and operators may rewrap ciphertexts of disabled or compromised
        versions (that is how data is moved off a leaked key); services may not.
        """
        parsed = envelope.parse(ciphertext)
        with self.audited(principal, "rewrap", parsed.key, parsed.version) as ctx:
            principal.require("rewrap", parsed.key)
            privileged = principal.role in ("admin", "operator")
            plaintext = self._open(parsed, context, "rewrap", allow_blocked=privileged)
            info = self.key_info(parsed.key)
            v = self._version_for(info, "encrypt", None)
            sealed = self._seal(info, v, plaintext, context)
            ctx["reason"] = f"to version {v.version}"
        return sealed, v.version

    def generate_data_key(
        self, principal: Principal, name: str, context: dict[str, Any] | None = None
    ) -> tuple[bytes, str, int]:
        """A fresh 256-bit data key: plaintext, and wrapped under the active version."""
        with self.audited(principal, "data-key", name) as ctx:
            info, v = self._active(principal, "data-key", name, ctx, "encrypt")
            dek = alg.new_data_key()
            sealed = self._seal(info, v, dek, context)
        return dek, sealed, v.version

    def sign(self, principal: Principal, name: str, message: bytes) -> tuple[bytes, int]:
        """Sign (or MAC) with the active version; returns ``(raw signature, version)``."""
        with self.audited(principal, "sign", name) as ctx:
            info, v = self._active(principal, "sign", name, ctx, "sign", "mac")
            signature = self._loaded(info, v).sign(message)
        return signature, v.version

    def verify(
        self,
        principal: Principal,
        name: str,
        message: bytes,
        signature: bytes,
        version: int | None = None,
    ) -> int:
        """Verify; returns the version that verified. Raises :class:`InvalidSignature`."""
        raw = signature
        with self.audited(principal, "verify", name, version) as ctx:
            principal.require("verify", name)
            info = self.key_info(name)
            self._require_purpose(info, "sign", "mac")
            candidates = [version] if version else sorted(info.versions, reverse=True)
            for n in candidates:
                v = info.versions.get(n)
                if v is None:
                    raise NotFoundError(f"key {name!r} has no version {n}")
                if version is None and not usable_for(v.state, "verify"):
                    continue
                v = self._version_for(info, "verify", n)
                try:
                    self._loaded(info, v).verify(message, raw)
                except InvalidSignature:
                    continue
                ctx["version"] = v.version
                return v.version
            raise InvalidSignature()
        raise AssertionError("unreachable")  # pragma: no cover

    def public_key(self, principal: Principal, name: str, version: int | None = None) -> tuple[bytes, int, str]:
        """SubjectPublicKeyInfo DER, version and algorithm of an asymmetric key."""
        with self.audited(principal, "export-public", name, version) as ctx:
            principal.require("export-public", name)
            info = self.key_info(name)
            n = version or (info.active.version if info.active else info.latest)
            v = info.versions.get(n)
            if v is None:
                raise NotFoundError(f"key {name!r} has no version {n}")
            if v.public_key is None:
                raise UsageError(f"key {name!r} is a secret key", hint="only asymmetric keys have a public part")
            ctx["version"] = n
        return v.public_key, n, v.algorithm

    # ------------------------------------------------------------------ internal use
    def loaded_version(self, name: str, version: int, *, allow_blocked: bool) -> alg.LoadedKey:
        """Material for internal bulk work (data rewrap, dead-key proofs). Callers audit."""
        info = self.key_info(name)
        v = info.versions.get(version)
        if v is None:
            raise NotFoundError(f"key {name!r} has no version {version}")
        if v.state in BLOCKED and not allow_blocked:
            raise KeyStateError(name, version, v.state, "use")
        return self._loaded(info, v)

    def _active(
        self, principal: Principal, op: str, name: str, ctx: dict[str, Any], *purposes: str
    ) -> tuple[KeyInfo, VersionInfo]:
        """Authorise ``op`` on ``name`` and pick its active version (noted in the audit ``ctx``)."""
        principal.require(op, name)
        info = self.key_info(name)
        self._require_purpose(info, *purposes)
        v = self._version_for(info, op, None)
        ctx["version"] = v.version
        return info, v

    def _seal(self, info: KeyInfo, v: VersionInfo, plaintext: bytes, context: dict[str, Any] | None) -> str:
        """``plaintext`` encrypted under version ``v``, in the ciphertext text form."""
        payload = self._loaded(info, v).encrypt(plaintext, envelope.associated_data(info.name, v.version, context))
        return envelope.Ciphertext(info.name, v.version, payload).text()

    def _version_for(self, info: KeyInfo, op: str, version: int | None) -> VersionInfo:
        """Pick and check the version an operation uses; refuse blocked states."""
        if version is None:
            v = info.active
            if v is None:
                latest = info.versions[info.latest]
                raise KeyStateError(info.name, latest.version, latest.state, op)
        else:
            found = info.versions.get(version)
            if found is None:
                raise NotFoundError(f"key {info.name!r} has no version {version}", hint=f"versions 1..{info.latest}")
            v = found
        if not usable_for(v.state, op):
            raise KeyStateError(info.name, v.version, v.state, op)
        if op in ("decrypt", "verify") and v.version < info.min_decryption_version:
            raise KeyStateError(
                info.name,
                v.version,
                f"below min_decryption_version {info.min_decryption_version}",
                op,
            )
        return v

    def _require_purpose(self, info: KeyInfo, *purposes: str) -> None:
        if info.purpose not in purposes:
            raise UsageError(
                f"key {info.name!r} is a {info.purpose} key",
                hint=f"this operation needs a {' or '.join(purposes)} key",
            )
