"""Importing existing key material as a new key or a new active version of one.

Every import is audited, refusals included. Material that the vault holds or held
already is refused: above all a version marked compromised (or destroyed) cannot
come back as a new active version, under its own name or another one. The check
compares the fingerprint of the material (SPEC §3: SHA-256 of the public key, or
the vault's HMAC of a secret key) with that of every version ever created, which
the vault keeps for destroyed versions too.
"""

from __future__ import annotations

from sqlalchemy import select

from keyguard.crypto import algorithms as alg
from keyguard.errors import KeyRejectedError, UsageError
from keyguard.store.tables import Key, KeyVersion
from keyguard.vault.keyimport import ParsedKey, parse_key
from keyguard.vault.keyring import KeyringMixin
from keyguard.vault.lifecycle import VersionState
from keyguard.vault.model import KeyInfo, check_name, check_tier
from keyguard.vault.principal import Principal


class ImportMixin(KeyringMixin):
    """``import_key`` (it adds keys and versions the way the keyring does)."""

    def import_key(
        self,
        principal: Principal,
        name: str,
        data: bytes,
        purpose: str,
        tier: str = "medium",
        algorithm: str | None = None,
        owner: str = "",
        tags: list[str] | None = None,
    ) -> KeyInfo:
        """Import existing material as a new key (or a new active version of an existing one)."""
        check_name(name)
        check_tier(tier)
        if algorithm is not None:
            alg.check_purpose(algorithm, purpose)
        exists = self._exists(name)
        with self.audited(principal, "key.import", name) as ctx:
            principal.require("key.import", name)
            parsed = parse_key(data, purpose, algorithm)
            if algorithm is not None and parsed.kind == "private" and parsed.algorithm != algorithm:
                raise UsageError(f"the key is {parsed.algorithm}, not {algorithm}")
            alg.check_purpose(parsed.algorithm, purpose)
            self._refuse_held(parsed)
            if exists:
                info = self.key_info(name)
                if info.purpose != purpose:
                    raise UsageError(f"key {name!r} is a {info.purpose} key", hint="import under another name")
                ctx["version"] = self._add_version(info, parsed.algorithm, parsed.material, "imported")
            else:
                ctx["version"] = 1
                self._insert_key(
                    name,
                    purpose,
                    tier,
                    owner,
                    tags or [],
                    90,
                    parsed.algorithm,
                    parsed.material,
                    "imported",
                )
        return self.key_info(name)

    def _refuse_held(self, parsed: ParsedKey) -> None:
        """Refuse material whose fingerprint matches a version the vault holds or held."""
        spki = alg.LoadedKey(parsed.algorithm, parsed.material).public_spki()
        fingerprint = (
            alg.public_fingerprint(spki)
            if spki is not None
            else alg.secret_fingerprint(self.fingerprint_key, parsed.material)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Key.name, KeyVersion.version, KeyVersion.state)
                .join(Key, Key.id == KeyVersion.key_id)
                .where(KeyVersion.fingerprint == fingerprint)
                .order_by(Key.name, KeyVersion.version)
            ).all()
        if not rows:
            return
        blocked = [r for r in rows if r.state in (VersionState.COMPROMISED.value, VersionState.DESTROYED.value)]
        if blocked:
            first = blocked[0]
            raise KeyRejectedError(
                f"this key material is {first.name}@{first.version}, which is {first.state}",
                hint="a leaked key never comes back: generate a new one (keyguard key rotate)",
            )
        first = rows[0]
        raise KeyRejectedError(
            f"this key material is already held as {first.name}@{first.version}",
            hint="one key material, one key version: use that key, or import another key",
        )

    def _exists(self, name: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(Key.id).where(Key.name == name)).first() is not None
