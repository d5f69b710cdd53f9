"""The state watcher: a change on one node reaches the others' caches without waiting for a request.

On PostgreSQL the notification names what changed; a block (disabled, compromised,
destroyed) is applied to the cached entry at once, anything else is read back from
the database; the listener keeps one connection instead of reconnecting (and
emptying every cache) each second. On SQLite the counter is polled every few ms.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from keyguard.vault.principal import Principal

SVC = Principal(name="svc", role="admin")


def _until(check: Callable[[], bool], limit: float = 2.0) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < limit, "not seen in time"
        time.sleep(0.001)
    return time.monotonic() - started


def test_a_compromise_reaches_the_other_node_cache(vault_factory: Callable[[], Any], admin: Principal) -> None:
    first, second = vault_factory(), vault_factory()
    first.create_key(admin, "pay", "encrypt")
    ciphertext, _ = first.encrypt(SVC, "pay", b"x")
    second.start_watcher()
    try:
        time.sleep(0.5)  # the watcher's start-up invalidation is behind us
        second.decrypt(SVC, ciphertext)  # cached on the second node
        cleared: list[int] = []
        second.state_hooks.append(lambda: cleared.append(1))
        first.set_state(admin, "pay", 1, "compromised")

        def refused() -> bool:
            info = second.cached_key_info("pay")
            return info is not None and info.versions[1].state == "compromised"

        _until(refused)
        if first.engine.dialect.name == "postgresql":
            assert cleared == []  # a key change leaves the token cache alone
        with pytest.raises(Exception, match="compromised"):
            second.decrypt(SVC, ciphertext)
    finally:
        second.close()


def test_a_notification_only_ever_blocks(vault_factory: Callable[[], Any], admin: Principal) -> None:
    """A payload that would loosen the cached state is not believed: the key is read back instead."""
    vault = vault_factory()
    vault.create_key(admin, "pay", "encrypt")
    vault.set_state(admin, "pay", 1, "disabled")
    assert vault.key_info("pay").versions[1].state == "disabled"
    vault._notified("key:pay:1:active")
    assert vault.key_info("pay").versions[1].state == "disabled"  # from the database, not the payload
    vault.set_state(admin, "pay", 1, "enabled")
    cached = vault.key_info("pay")
    usable = cached.versions[1].state  # the latest version enabled again is the active one
    vault._notified("key:pay:1:compromised")  # blocks the cached entry in place, before any read
    assert cached.versions[1].state == "compromised"
    assert vault.key_info("pay").versions[1].state == usable  # then the reload replaced it
    for bad in ("key:pay:x:disabled", "key:pay:99:disabled", "key:pay", "changed", "key:nope:1:disabled"):
        vault._notified(bad)
    assert vault.key_info("pay").versions[1].state == usable


def test_the_listener_keeps_its_connection(pg_url: str, tmp_path: Any, admin: Principal) -> None:
    """No reconnect (and no emptied caches) every second while nothing changes."""
    from keyguard.store.db import create_db_engine, migrate
    from keyguard.vault.roots import KeyFileRoot
    from keyguard.vault.service import Vault

    engine = create_db_engine(pg_url)
    migrate(engine)
    vault = Vault.initialize(engine, KeyFileRoot.create(tmp_path / "root.key"))
    vault.create_key(admin, "pay", "encrypt")
    cleared: list[float] = []
    vault.state_hooks.append(lambda: cleared.append(time.monotonic()))
    vault.start_watcher()
    try:
        time.sleep(0.2)
        vault.key_info("pay")
        cleared.clear()
        time.sleep(2.5)
        assert cleared == [] and vault.cached_key_info("pay") is not None
    finally:
        vault.close()
        engine.dispose()
