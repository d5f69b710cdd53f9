"""In-process encrypt + decrypt of 4 KiB with aes256-gcm through the Vault, audited.

Every operation checks the key state and appends its hash-chained audit event
durably (SQLite WAL, synchronous=FULL) before it returns; concurrent callers
share one transaction (group commit). Printed beside raw ``cryptography``
AESGCM on the same data with the same threads, and the ratio.

    .venv/bin/python bench/vault_inprocess.py [--threads 16] [--seconds 5] [--db URL]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keyguard.audit.reading import verify_log
from keyguard.store.db import create_db_engine, migrate
from keyguard.vault.principal import Principal
from keyguard.vault.roots import KeyFileRoot
from keyguard.vault.service import Vault

SIZE = 4096


def run(threads: int, seconds: float, work: Callable[[], int]) -> tuple[float, int]:
    """Run ``work`` (returns ops done per call) on ``threads`` threads; ops/s and total ops."""
    stop = threading.Event()
    counts = [0] * threads
    errors: list[BaseException] = []

    def loop(i: int) -> None:
        try:
            while not stop.is_set():
                counts[i] += work()
        except BaseException as exc:  # noqa: BLE001 - report after the run
            errors.append(exc)
            stop.set()

    pool = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for t in pool:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return sum(counts) / elapsed, sum(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in a temp dir)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="kg-bench-"))
    url = args.db or f"sqlite:///{tmp / 'keyguard.db'}"
    engine = create_db_engine(url)
    migrate(engine)
    vault = Vault.initialize(engine, KeyFileRoot.create(tmp / "root.key"))
    admin = Principal(name="bench-admin", role="admin")
    vault.create_key(admin, "bench", "encrypt", algorithm="aes256-gcm")
    svc = Principal(
        name="bench-svc",
        role="service",
        grants=(("bench", "encrypt"), ("bench", "decrypt")),
        source_ip="127.0.0.1",
        user_agent="bench",
    )
    data = os.urandom(SIZE)
    context = {"tenant": "acme"}

    def audited() -> int:
        ciphertext, _ = vault.encrypt(svc, "bench", data, context)
        plaintext, _, _ = vault.decrypt(svc, ciphertext, context)
        assert plaintext == data
        return 2

    aead = AESGCM(os.urandom(32))
    aad = b"kg:v1:bench:1:" + b'{"tenant":"acme"}'

    def raw() -> int:
        nonce = os.urandom(12)
        sealed = aead.encrypt(nonce, data, aad)
        assert aead.decrypt(nonce, sealed, aad) == data
        return 2

    before = verify_log(engine)["events"]
    audited_rate, audited_ops = run(args.threads, args.seconds, audited)
    raw_rate, _ = run(args.threads, args.seconds, raw)
    check = verify_log(engine, vault.checkpoint_key)
    written = check["events"] - before
    assert written == audited_ops, (written, audited_ops)

    print(
        f"in-process encrypt+decrypt, {SIZE} B aes256-gcm, {args.threads} threads, {args.seconds:g} s each, "
        f"{engine.dialect.name}"
    )
    print(f"{'path':<44}{'ops/s':>12}")
    print(f"{'keyguard Vault (state check + durable audit)':<44}{audited_rate:>12,.0f}")
    print(f"{'raw cryptography AESGCM':<44}{raw_rate:>12,.0f}")
    print(f"ratio keyguard / raw: {audited_rate / raw_rate:.3f}  (raw is {raw_rate / audited_rate:.1f}x faster)")
    print(
        f"audit: {written:,} events appended, one per operation; chain verified "
        f"({check['events']:,} events, checkpoint {'ok' if check['checkpoint'] else 'absent'})"
    )
    target = 5000
    print(f"target >= {target:,} audited ops/s: {'met' if audited_rate >= target else 'NOT met'}")
    vault.close()
    engine.dispose()


if __name__ == "__main__":
    main()
