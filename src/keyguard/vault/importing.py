"""Importing existing key material as a new key or a new active version of one."""

from __future__ import annotations

from sqlalchemy import select

from keyguard.crypto import algorithms as alg
from keyguard.errors import UsageError
from keyguard.store.tables import Key
from keyguard.vault.keyimport import parse_key
from keyguard.vault.keyring import KeyringMixin
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
        parsed = parse_key(data, purpose, algorithm)
        if algorithm is not None and parsed.kind == "private" and parsed.algorithm != algorithm:
            raise UsageError(f"the key is {parsed.algorithm}, not {algorithm}")
        alg.check_purpose(parsed.algorithm, purpose)
        exists = self._exists(name)
        with self.audited(principal, "key.import", name) as ctx:
            principal.require("key.import", name)
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

    def _exists(self, name: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(Key.id).where(Key.name == name)).first() is not None
