"""The key vault: roots of trust, the barrier, keys and their versions, clients."""


def managed_key_index() -> object:
    """The vault's fingerprint index of its own keys (for ``keyguard scan --match-vault``)."""
    from keyguard.response.leaks import VaultKeyIndex
    from keyguard.runtime import open_vault

    return VaultKeyIndex(open_vault())
