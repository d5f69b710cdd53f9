"""The scheduler thread of ``keyguard serve``: expire leases and rotate due keys, on the leader only.

Every ``tick`` the thread checks it leads (:class:`~keyguard.response.scheduler.leader.Leadership`);
the leader reaps expired leases at once (state is in the database, so a restart or
another node picks up where a dead one stopped), runs the rotation pass every
``rotation_every`` seconds and, every ``jwt_every`` seconds, replaces the JWT signing
key once it is ``[auth] jwt_rotation`` old (not only when the next token is issued).
A follower does nothing but try again, so when the leader
dies the next node takes over within one tick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from keyguard.config import Settings
from keyguard.connectors.config import ConnectorConfig, load_connectors
from keyguard.connectors.leases import LeaseManager
from keyguard.errors import KeyguardError
from keyguard.monitor.delivery import Dispatcher
from keyguard.monitor.sinks.config import configured_sinks
from keyguard.response.scheduler.leader import Leadership
from keyguard.response.scheduler.rotation import ScheduledRotations
from keyguard.vault.jwks import JwtKeyring
from keyguard.vault.service import Vault

log = logging.getLogger("keyguard.response.scheduler")


class Scheduler:
    """Lease expiry and scheduled rotation in one background thread."""

    def __init__(self, vault: Vault, leases: LeaseManager | None, *, tick: float = 0.25,
                 rotation_every: float = 60.0, rotate: bool = True, leadership: Leadership | None = None,
                 jwt_keyring: JwtKeyring | None = None, jwt_every: float = 10.0,
                 dispatcher: Dispatcher | None = None) -> None:
        self.vault = vault
        self.leases = leases
        self.dispatcher = dispatcher
        self.rotations = ScheduledRotations(vault, dispatcher=dispatcher) if rotate else None
        self.tick = tick
        self.rotation_every = rotation_every
        self.leadership = leadership or Leadership(vault.engine)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_rotation = float("-inf")
        self.jwt_keyring = jwt_keyring
        self.jwt_every = jwt_every
        self._last_jwt = float("-inf")
        self.passes = 0

    def run_once(self) -> dict[str, Any]:
        """One tick: nothing unless this node leads; then reap leases and, when it is time, rotate."""
        if not self.leadership.held():
            return {"leader": False}
        done: dict[str, Any] = {"leader": True}
        if self.leases is not None:
            reaped = self.leases.reap()
            done["leases"] = {"expired": reaped.expired, "cleaned": reaped.cleaned, "failed": reaped.failed}
        if self.rotations is not None and time.monotonic() - self._last_rotation >= self.rotation_every:
            self._last_rotation = time.monotonic()
            report = self.rotations.run()
            done["rotations"] = {"rotated": report.rotated, "failed": report.failed}
        if self.jwt_keyring is not None and time.monotonic() - self._last_jwt >= self.jwt_every:
            self._last_jwt = time.monotonic()
            try:
                generation = self.jwt_keyring.rotate_if_due()
            except KeyguardError as exc:  # the signer still rotates on the next issue; leases went on
                log.warning("scheduled rotation of the JWT signing key failed: %s", exc.message)
                generation = None
            if generation is not None:
                log.info("scheduled rotation of the JWT signing key: generation %d", generation)
                done["jwt"] = {"generation": generation}
        self.passes += 1
        return done

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - one bad pass must not end scheduling
                log.exception("scheduler pass failed")
            self._stop.wait(self.tick)

    def start(self) -> None:
        """Run in a daemon thread until :meth:`stop`."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="keyguard-scheduler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread, give up leadership, close the lease backends."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.leadership.release()
        if self.leases is not None:
            self.leases.close()
        if self.dispatcher is not None:
            self.dispatcher.close()


def lease_manager(vault: Vault, connectors: Mapping[str, ConnectorConfig]) -> LeaseManager:
    """Leases over ``connectors``, audited in the vault's log, on the vault's clock."""
    return LeaseManager(vault.engine, vault.audit, connectors, clock=vault.clock)


def build_scheduler(settings: Settings, vault: Vault, **options: Any) -> Scheduler:
    """The scheduler of ``serve``: connectors and alert sinks from ``keyguard.toml``, the vault's database."""
    sinks = configured_sinks(settings)
    dispatcher = Dispatcher(vault.engine, sinks) if sinks else None
    return Scheduler(vault, lease_manager(vault, load_connectors(settings.config_file)), dispatcher=dispatcher,
                     **options)
