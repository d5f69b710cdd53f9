"""The tamper-evident audit log: hash-chained events, group commit, verification."""
