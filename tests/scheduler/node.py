"""One scheduler node for the cluster test: ``python node.py URL KEYFILE SECONDS`` prints what it did as JSON."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from keyguard.response.scheduler.service import Scheduler
from keyguard.store.db import create_db_engine
from keyguard.vault.roots import KeyFileRoot
from keyguard.vault.service import Vault


def main() -> None:
    url, keyfile, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    vault = Vault.open(create_db_engine(url), KeyFileRoot(Path(keyfile)))
    scheduler = Scheduler(vault, None, tick=0.05, rotation_every=0.0)
    led, rotated = 0, []
    print("ready", flush=True)
    sys.stdin.readline()  # both nodes start together
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        done = scheduler.run_once()
        led += bool(done["leader"])
        rotated += done.get("rotations", {}).get("rotated", [])
        time.sleep(0.05)
    print(json.dumps({"led": led, "rotated": rotated}), flush=True)
    sys.stdin.readline()  # keep the lock until every node has reported
    scheduler.stop()
    vault.close()


if __name__ == "__main__":
    main()
