"""Root rotation without downtime for readers.

1. A new barrier generation is created, wrapped by the new root, and chained to
   the old one in both directions in one transaction: running readers that hold
   the old keyring follow the chain forward; new readers holding only the new
   root follow it backward to rows not yet re-sealed.
2. Every sealed row is re-sealed under the new generation, in batches.
3. The old generation is retired (its wrapped key erased): the old root no
   longer opens the vault.

Killed at any point, a rerun (``init --rotate-root`` with the new root) finds
the live older generation and finishes steps 2–3.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from keyguard.store.db import write_tx
from keyguard.store.tables import Client, KeyVersion, RootKey, VaultSecret
from keyguard.vault.barrier import Barrier, chain_seal, live_generations, open_barrier
from keyguard.vault.roots import RootOfTrust, open_root

_BATCH = 500


def _key_aad(row: Any) -> bytes:
    return f"keyguard-key:{row.key_id}:{row.version}:{row.algorithm}".encode()


def rotate_root(
    engine: Engine, new_root: Callable[[], RootOfTrust], env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Rotate to a new root (or finish an interrupted rotation). Returns a report."""
    env = os.environ if env is None else env
    gens = live_generations(engine)
    if not gens:
        from keyguard.errors import NotFoundError

        raise NotFoundError("the vault is not initialised", hint="run keyguard init")
    resumed = len(gens) > 1
    if resumed:
        # An interrupted rotation: the newest generation already belongs to the new root.
        barrier = open_barrier(engine, new_root())
    else:
        current = gens[0]
        old_barrier = open_barrier(engine, open_root(current.root_kind, current.root_params, env))
        root = new_root()
        new_key = os.urandom(32)
        old_gen = current.generation
        new_gen = old_gen + 1
        old_key = old_barrier.key(old_gen)
        with write_tx(engine) as conn:
            conn.execute(
                insert(RootKey).values(
                    generation=new_gen,
                    root_kind=root.kind,
                    root_params=root.params(),
                    wrapped_key=root.wrap(new_key),
                    sealed_by_prev=chain_seal(old_key, new_key),
                    created_at=datetime.now(UTC),
                )
            )
            conn.execute(
                update(RootKey).where(RootKey.generation == old_gen).values(sealed_by_next=chain_seal(new_key, old_key))
            )
        barrier = Barrier({old_gen: old_key, new_gen: new_key})
    resealed = _reseal_all(engine, barrier)
    newest = barrier.generation
    with write_tx(engine) as conn:
        conn.execute(
            update(RootKey)
            .where(RootKey.generation < newest, RootKey.retired_at.is_(None))
            .values(retired_at=datetime.now(UTC), wrapped_key=None, sealed_by_next=None)
        )
    kind = live_generations(engine)[0].root_kind
    return {"generation": newest, "root": kind, "resealed": resealed, "resumed": resumed}


def _reseal_all(engine: Engine, barrier: Barrier) -> int:
    newest = barrier.generation
    count = 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    KeyVersion.id,
                    KeyVersion.key_id,
                    KeyVersion.version,
                    KeyVersion.algorithm,
                    KeyVersion.sealed,
                    KeyVersion.seal_generation,
                )
                .where(KeyVersion.seal_generation != newest, KeyVersion.sealed.is_not(None))
                .limit(_BATCH)
            ).all()
        if not rows:
            break
        with write_tx(engine) as conn:
            for row in rows:
                aad = _key_aad(row)
                material = barrier.unseal(row.seal_generation, row.sealed, aad)
                gen, sealed = barrier.seal(material, aad)
                conn.execute(
                    update(KeyVersion)
                    .where(KeyVersion.id == row.id, KeyVersion.seal_generation == row.seal_generation)
                    .values(sealed=sealed, seal_generation=gen)
                )
        count += len(rows)
    # Versions destroyed meanwhile carry no material: just move their generation.
    with write_tx(engine) as conn:
        conn.execute(update(KeyVersion).where(KeyVersion.sealed.is_(None)).values(seal_generation=newest))
        secrets = conn.execute(
            select(VaultSecret.name, VaultSecret.sealed, VaultSecret.seal_generation).where(
                VaultSecret.seal_generation != newest
            )
        ).all()
        for name, old_sealed, old_gen in secrets:
            aad = f"vault-secret:{name}".encode()
            gen, new_sealed = barrier.seal(barrier.unseal(old_gen, old_sealed, aad), aad)
            conn.execute(
                update(VaultSecret).where(VaultSecret.name == name).values(sealed=new_sealed, seal_generation=gen)
            )
            count += 1
        totps = conn.execute(select(Client.name, Client.totp_sealed).where(Client.totp_sealed.is_not(None))).all()
        for client_name, totp in totps:
            aad = f"client-totp:{client_name}".encode()
            assert totp is not None
            _gen, resealed = barrier.seal(barrier.unseal_any(totp, aad), aad)
            conn.execute(update(Client).where(Client.name == client_name).values(totp_sealed=resealed))
            count += 1
    return count
