"""The vault: every use of a managed key goes through here and is audited first.

:class:`Vault` is composed of the core (opening, vault secrets, the key-state
cache and its watcher, the audit wrapper: :mod:`keyguard.vault.core`), key
management (:mod:`keyguard.vault.keyring`), the crypto operations
(:mod:`keyguard.vault.operations`) and key import (:mod:`keyguard.vault.importing`).
The names callers import from here are re-exported from those modules.
"""

from __future__ import annotations

from keyguard.errors import IntegrityError, InvalidTag
from keyguard.vault.importing import ImportMixin
from keyguard.vault.model import (
    DESTRUCTIVE_OPS,
    TIERS,
    KeyInfo,
    VersionInfo,
    check_name,
    hash_token,
    json_dumps,
)
from keyguard.vault.operations import OperationsMixin


class Vault(ImportMixin, OperationsMixin):
    """Key management and cryptographic operations, audited."""


__all__ = [
    "DESTRUCTIVE_OPS",
    "TIERS",
    "IntegrityError",
    "InvalidTag",
    "KeyInfo",
    "Vault",
    "VersionInfo",
    "check_name",
    "hash_token",
    "json_dumps",
]
