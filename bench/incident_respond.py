"""Figure: `respond` end to end with 100,000 registered items to re-wrap (target < 30 s) on SQLite,
and the time from its start to the containment being effective (the vault refuses the version)."""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import fresh_sqlite, synthetic_history  # noqa: E402
from data_rewrap import seed  # noqa: E402

from keyguard.errors import KeyStateError  # noqa: E402
from keyguard.incident.service import IncidentService  # noqa: E402
from keyguard.response.respond import respond  # noqa: E402
from keyguard.vault.principal import Principal, local_admin  # noqa: E402
from keyguard.vault.roots import KeyFileRoot  # noqa: E402
from keyguard.vault.service import Vault  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000


def main() -> None:
    engine, home = fresh_sqlite("kg-bench-respond-")
    vault = Vault.initialize(engine, KeyFileRoot.create(home / "root.key"))
    admin = local_admin()
    vault.create_key(admin, "orders", "encrypt", tier="high")
    seed(vault, N)
    exposed = vault.clock.now() - timedelta(hours=6)
    synthetic_history(engine, "orders", 200_000, exposed)
    ciphertext, _ = vault.encrypt(admin, "orders", b"probe")
    other = Vault.open(engine, KeyFileRoot(home / "root.key"))  # a second reader of the same store
    other.start_watcher(interval=0.05)
    other.decrypt(admin, ciphertext)
    user = Principal(name="bench", role="admin")
    incidents = IncidentService(engine, vault.clock)
    contained: dict[str, float] = {}
    t0 = time.perf_counter()

    def on_step(message: str) -> None:
        if message.startswith("assess"):
            contained["respond"] = time.perf_counter() - t0

    result = respond(
        vault,
        incidents,
        admin,
        [("orders", 1)],
        exposed,
        jurisdictions=["eu"],
        on_step=on_step,
        report_dir=home / "reports",
        report_formats=("md", "html"),
    )
    total = time.perf_counter() - t0
    deadline = time.perf_counter() + 2
    while time.perf_counter() < deadline:
        try:
            other.decrypt(user, ciphertext)
        except KeyStateError:
            break
        time.sleep(0.005)
    else:
        raise SystemExit("the second reader still decrypts with the compromised version")
    print(
        f"respond (sqlite): {result.rewrapped:,} items re-wrapped, risk {result.grade}; "
        f"end to end {total:.1f} s (target < 30 s)"
    )
    print(f"respond start → containment effective: {result.contained_seconds:.3f} s (target < 1 s; the SLA allows 1 h)")
    for step in result.steps:
        print(f"  {step['step']:20s} {step['seconds']:7.2f} s")


if __name__ == "__main__":
    main()
