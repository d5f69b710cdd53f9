"""The key vault: roots of trust, the barrier, keys and their versions, clients."""
