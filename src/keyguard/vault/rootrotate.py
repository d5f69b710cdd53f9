"""Root rotation without downtime for readers, finished by a rerun after kill -9.

1. **Journal.** The new root is made (key file written, HSM key generated,
   passphrase salted), then one transaction records a new barrier generation
   wrapped by it, with the new root's parameters (salt and KDF cost, key-file
   path, HSM label), chained to the old generation in both directions. That row
   is the rotation journal: two live generations mean "a rotation is under
   way", and the new root's parameters are written there once, before anything
   is re-sealed, and never again. Running readers holding the old keyring
   follow the chain forward; readers holding only the new root follow it back.
2. **Re-seal.** Sealed key versions move to the new generation in batches,
   each one transaction guarded by the row's current generation: a batch
   redone after a crash changes nothing twice.
3. **Switch.** One transaction re-seals what is left under an older generation
   (vault secrets, TOTP seeds, a version written meanwhile) and retires the old
   generations (their wrapped keys erased): the old root no longer opens the
   vault. Either all of it happens or none.

Killed at any point, the same command finishes the rotation it started: with a
journal, the new root is *reopened* from the journal's parameters
(``KEYGUARD_NEW_PASSPHRASE`` / ``KEYGUARD_NEW_KEYFILE`` supply the secret), never
made again; a rotation that already finished is recognised and reported as such.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from keyguard.errors import KeyguardError, NotFoundError, RootKeyError, UsageError
from keyguard.store.db import write_tx
from keyguard.store.tables import Client, KeyVersion, RootKey, VaultSecret
from keyguard.vault.barrier import Barrier, chain_seal, live_generations, open_barrier
from keyguard.vault.roots import KeyFileRoot, RootOfTrust, create_root, open_root

_BATCH = 500
# The variables that name the new root during a rotation (the plain ones open the current root).
_NEW_VARS = {"passphrase": "KEYGUARD_NEW_PASSPHRASE", "keyfile": "KEYGUARD_NEW_KEYFILE"}


def _key_aad(row: Any) -> bytes:
    return f"keyguard-key:{row.key_id}:{row.version}:{row.algorithm}".encode()


def new_root_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the new root's variables in place of the current root's (to reopen the new root)."""
    out = dict(env)
    if env.get("KEYGUARD_NEW_PASSPHRASE"):
        out["KEYGUARD_PASSPHRASE"] = env["KEYGUARD_NEW_PASSPHRASE"]
    out.pop("KEYGUARD_KEYFILE", None)  # the journal records the new key file's path
    if env.get("KEYGUARD_NEW_KEYFILE"):
        out["KEYGUARD_KEYFILE"] = env["KEYGUARD_NEW_KEYFILE"]
    return out


def make_new_root(kind: str, home: Path, env: Mapping[str, str]) -> Callable[[], RootOfTrust]:
    """The new-root factory of ``init --rotate-root``.

    A key file named in ``KEYGUARD_NEW_KEYFILE`` that a killed run already wrote
    (before its journal was committed) is used as it is; it is checked like any
    root key file (mode 0600, 256 bits).
    """

    def make() -> RootOfTrust:
        named = env.get("KEYGUARD_NEW_KEYFILE")
        if kind == "keyfile" and named and Path(named).exists():
            return KeyFileRoot(Path(named))
        return create_root(kind, home, env, rotating=True)

    return make


def rotate_root(
    engine: Engine,
    new_root: Callable[[], RootOfTrust],
    env: Mapping[str, str] | None = None,
    *,
    kind: str | None = None,
) -> dict[str, Any]:
    """Rotate to a new root, or finish the rotation a killed run started. Returns a report.

    ``kind`` is the root kind asked for; a rotation under way to another kind is
    refused rather than finished silently.
    """
    env = os.environ if env is None else env
    gens = live_generations(engine)
    if not gens:
        raise NotFoundError("the vault is not initialised", hint="run keyguard init")
    newest = gens[0]
    resumed = len(gens) > 1
    if resumed:
        if kind is not None and kind != newest.root_kind:
            raise UsageError(
                f"a rotation to a {newest.root_kind} root is under way (generation {newest.generation})",
                hint=f"rerun keyguard init --rotate-root --root {newest.root_kind} to finish it",
            )
        barrier = _reopen_journal(engine, newest, env)
    elif (kind is None or kind == newest.root_kind) and _rotated_already(newest, env):
        return {
            "generation": newest.generation,
            "root": newest.root_kind,
            "resealed": 0,
            "resumed": True,
            "already_rotated": True,
        }
    else:
        barrier = _start(engine, newest, new_root, env)
    resealed = _reseal_key_versions(engine, barrier)
    resealed += _switch(engine, barrier)
    return {
        "generation": barrier.generation,
        "root": live_generations(engine)[0].root_kind,
        "resealed": resealed,
        "resumed": resumed,
        "already_rotated": False,
    }


def _rotated_already(current: RootKey, env: Mapping[str, str]) -> bool:
    """True when the new root named in ``KEYGUARD_NEW_*`` already opens the only live generation."""
    var = _NEW_VARS.get(current.root_kind)
    named = env.get(var) if var else None
    if not named or current.wrapped_key is None:
        return False
    if current.root_kind == "keyfile" and not Path(named).exists():
        return False
    try:
        open_root(current.root_kind, current.root_params, new_root_env(env)).unwrap(current.wrapped_key)
    except KeyguardError:
        return False
    return True


def _reopen_journal(engine: Engine, newest: RootKey, env: Mapping[str, str]) -> Barrier:
    """The barrier of a rotation under way, opened with the new root rebuilt from the journal."""
    try:
        return open_barrier(engine, open_root(newest.root_kind, newest.root_params, new_root_env(env)))
    except RootKeyError as exc:
        raise RootKeyError(
            f"the new {newest.root_kind} root does not open generation {newest.generation} "
            f"of the rotation under way ({exc})",
            hint="rerun with the KEYGUARD_NEW_* values of the interrupted run",
        ) from None


def _start(engine: Engine, current: RootKey, new_root: Callable[[], RootOfTrust], env: Mapping[str, str]) -> Barrier:
    """Step 1: make the new root and write the journal (new generation, chained both ways) in one transaction."""
    old_barrier = open_barrier(engine, open_root(current.root_kind, current.root_params, env))
    root = new_root()
    if current.wrapped_key is not None and _opens(root, current.wrapped_key):
        raise UsageError("the new root is the current one", hint="name a new root (KEYGUARD_NEW_*)")
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
    return Barrier({old_gen: old_key, new_gen: new_key})


def _opens(root: RootOfTrust, wrapped: bytes) -> bool:
    try:
        root.unwrap(wrapped)
    except RootKeyError:
        return False
    return True


def _reseal_key_versions(engine: Engine, barrier: Barrier) -> int:
    """Step 2: move sealed key versions to the newest generation, one transaction per batch."""
    count = 0
    while True:
        with engine.connect() as conn:
            rows = _stale_versions(conn, barrier.generation, _BATCH)
        if not rows:
            return count
        with write_tx(engine) as conn:
            count += _reseal_versions(conn, barrier, rows)


def _stale_versions(conn: Connection, newest: int, limit: int | None) -> list[Any]:
    query = select(
        KeyVersion.id,
        KeyVersion.key_id,
        KeyVersion.version,
        KeyVersion.algorithm,
        KeyVersion.sealed,
        KeyVersion.seal_generation,
    ).where(KeyVersion.seal_generation != newest, KeyVersion.sealed.is_not(None))
    return list(conn.execute(query if limit is None else query.limit(limit)).all())


def _reseal_versions(conn: Connection, barrier: Barrier, rows: list[Any]) -> int:
    moved = 0
    for row in rows:
        aad = _key_aad(row)
        gen, sealed = barrier.seal(barrier.unseal(row.seal_generation, row.sealed, aad), aad)
        # Guarded by the generation read: a row another run moved already is left alone.
        moved += conn.execute(
            update(KeyVersion)
            .where(KeyVersion.id == row.id, KeyVersion.seal_generation == row.seal_generation)
            .values(sealed=sealed, seal_generation=gen)
        ).rowcount
    return moved


def _switch(engine: Engine, barrier: Barrier) -> int:
    """Step 3, atomic: re-seal what is left under older generations and retire them."""
    newest = barrier.generation
    with write_tx(engine) as conn:
        count = _reseal_versions(conn, barrier, _stale_versions(conn, newest, None))
        # Versions destroyed meanwhile carry no material: just move their generation.
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
        conn.execute(
            update(RootKey)
            .where(RootKey.generation < newest, RootKey.retired_at.is_(None))
            .values(retired_at=datetime.now(UTC), wrapped_key=None, sealed_by_next=None)
        )
    return count
