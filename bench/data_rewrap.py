"""Figure: `data rewrap` of 100,000 registered items, items/s (target >= 20,000/s on SQLite)."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import fresh_sqlite  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from keyguard.crypto import envelope  # noqa: E402
from keyguard.data.inventory import DataInventory  # noqa: E402
from keyguard.store.tables import DataItem  # noqa: E402
from keyguard.vault.principal import local_admin  # noqa: E402
from keyguard.vault.roots import KeyFileRoot  # noqa: E402
from keyguard.vault.service import Vault  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000


def seed(vault: Vault, n: int) -> None:
    """``n`` items of 32-byte wrapped data keys with an encryption context each."""
    loaded = vault.loaded_version("orders", 1, allow_blocked=False)
    now = datetime.now(UTC)
    import os

    for start in range(0, n, 20_000):
        rows = []
        for i in range(start, min(n, start + 20_000)):
            ctx = {"row": i}
            payload = loaded.encrypt(os.urandom(32), envelope.associated_data("orders", 1, ctx))
            rows.append(
                {
                    "name": f"orders/{i}",
                    "data_class": "payment",
                    "records": 100,
                    "key_name": "orders",
                    "version": 1,
                    "ciphertext": envelope.Ciphertext("orders", 1, payload).text(),
                    "context": ctx,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        with vault.engine.begin() as conn:
            conn.execute(insert(DataItem), rows)


def main() -> None:
    engine, home = fresh_sqlite("kg-bench-rewrap-")
    vault = Vault.initialize(engine, KeyFileRoot.create(home / "root.key"))
    admin = local_admin()
    vault.create_key(admin, "orders", "encrypt", tier="high")
    seed(vault, N)
    vault.rotate(admin, "orders", "chacha20-poly1305")
    vault.set_state(admin, "orders", 1, "compromised")
    t0 = time.perf_counter()
    report = DataInventory(vault).rewrap(admin, "orders")
    took = time.perf_counter() - t0
    assert report.rewrapped == N and report.remaining == 0
    print(f"data rewrap (sqlite): {N:,} items in {took:.2f} s = {N / took:,.0f} items/s  (target >= 20,000/s)")


if __name__ == "__main__":
    main()
