"""Scheduled rotation: every key whose period has passed gets one new version, once per cluster.

A due rotation is *claimed* first: a row of ``scheduled_rotations`` keyed by the key and
its last rotation time (``slot``), whose unique constraint lets exactly one node insert
it even when two schedulers race. The claimant rotates (the vault's own audited
``key.rotate``, actor ``keyguard:scheduler``) and then re-wraps the key's registered data
in batches (``data.rewrap``, resumable). Every state of the row is a resume point: a
claim whose key still has the old rotation time was never rotated (rotate now); one
whose key moved on was rotated (re-wrap); ``rewrapping`` re-wraps what is left. A failed
rotation is kept as ``failed`` with its error, raises an alert, and is retried later.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from keyguard.audit.log import format_ts
from keyguard.clock import as_utc
from keyguard.data.inventory import DataInventory
from keyguard.errors import KeyguardError
from keyguard.monitor.alerts import save_alerts
from keyguard.monitor.delivery import Dispatcher
from keyguard.monitor.detect.engine import AlertUpdate, group_key_of
from keyguard.policy.schedule import due_at
from keyguard.store.db import write_tx
from keyguard.store.lease_tables import ScheduledRotation
from keyguard.store.tables import Key
from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault

log = logging.getLogger("keyguard.response.scheduler")
SCHEDULER = Principal(name="keyguard:scheduler", role="admin", mfa=True)
ALERT_RULE = "scheduled-rotation-failed"
#: A claim this old whose node never finished it is taken over (the node died mid-way).
CLAIM_GRACE = timedelta(minutes=5)
RETRY_AFTER = timedelta(minutes=10)


def node_name() -> str:
    """This scheduler, as written in a claim (host, process, and a random tag per instance)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"[-128:]


@dataclass
class RotationReport:
    """What one pass did."""

    rotated: list[tuple[str, int]] = field(default_factory=list)
    rewrapped: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


class ScheduledRotations:
    """Due rotations of ``vault``'s keys, claimed, rotated, re-wrapped and recorded."""

    def __init__(self, vault: Vault, *, node: str | None = None, batch: int = 2000,
                 claim_grace: timedelta = CLAIM_GRACE, retry_after: timedelta = RETRY_AFTER,
                 dispatcher: Dispatcher | None = None) -> None:
        self.vault = vault
        self.dispatcher = dispatcher
        self.engine: Engine = vault.engine
        self.node = node or node_name()
        self.batch = batch
        self.claim_grace = claim_grace
        self.retry_after = retry_after

    def run(self) -> RotationReport:
        """One pass: resume unfinished work, then claim and rotate what is due."""
        report = RotationReport()
        now = self.vault.clock.now()
        for run in self._unfinished():
            self._resume(run, report)
        with self.engine.connect() as conn:
            keys = conn.execute(select(Key.name, Key.rotated_at, Key.rotation_days)).all()
        for name, rotated_at, days in keys:
            if due_at(rotated_at, days) <= now:
                run_id = self._claim(name, rotated_at, days, now)
                if run_id is not None:
                    self._rotate(run_id, name, report)
        return report

    # ------------------------------------------------------------------ claims
    def _claim(self, name: str, rotated_at: datetime, days: int, now: datetime) -> int | None:
        latest = max(self.vault.key_info(name).versions) if self._exists(name) else None
        try:
            with write_tx(self.engine) as conn:
                return int(conn.execute(insert(ScheduledRotation).values(
                    key_name=name, slot=format_ts(as_utc(rotated_at)), due_at=due_at(rotated_at, days),
                    status="claimed", node=self.node, claimed_at=now, from_version=latest, attempts=1, error="",
                ).returning(ScheduledRotation.id)).scalar_one())
        except IntegrityError:
            return None  # another node (or an earlier pass) holds this rotation

    def _exists(self, name: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(Key.id).where(Key.name == name)).first() is not None

    def _unfinished(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(ScheduledRotation).where(
                ScheduledRotation.status.in_(("claimed", "rewrapping", "failed"))).order_by(ScheduledRotation.id)))

    def _take_over(self, run: Any, now: datetime, status: str) -> bool:
        """Move a stale claim or an old failure to this node (conditional: one taker)."""
        with write_tx(self.engine) as conn:
            return bool(conn.execute(update(ScheduledRotation).where(
                ScheduledRotation.id == run.id, ScheduledRotation.status == run.status,
                ScheduledRotation.claimed_at == run.claimed_at).values(
                status=status, node=self.node, claimed_at=now, attempts=ScheduledRotation.attempts + 1)).rowcount)

    def _resume(self, run: Any, report: RotationReport) -> None:
        now = self.vault.clock.now()
        if run.status == "rewrapping":
            self._rewrap(run.id, run.key_name, report)
            return
        if run.status == "failed":
            if as_utc(run.finished_at or run.claimed_at) > now - self.retry_after:
                return
            if self._still_at_slot(run) and self._take_over(run, now, "claimed"):
                self._rotate(run.id, run.key_name, report)
            elif not self._still_at_slot(run):
                self._set(run.id, status="skipped", finished_at=now, error="rotated meanwhile")
            return
        # claimed: by a node (maybe this one) that died or stopped before finishing; its claim may still be live
        if as_utc(run.claimed_at) > now - self.claim_grace:
            return
        if self._still_at_slot(run):
            if self._take_over(run, now, "claimed"):
                self._rotate(run.id, run.key_name, report)
        elif self._take_over(run, now, "rewrapping"):
            self._rewrap(run.id, run.key_name, report)

    def _still_at_slot(self, run: Any) -> bool:
        """True when the key was not rotated since the claim's slot (the rotation has not happened)."""
        with self.engine.connect() as conn:
            rotated = conn.execute(select(Key.rotated_at).where(Key.name == run.key_name)).scalar_one_or_none()
        return rotated is not None and format_ts(as_utc(rotated)) == run.slot

    def _set(self, run_id: int, **values: Any) -> None:
        with write_tx(self.engine) as conn:
            conn.execute(update(ScheduledRotation).where(ScheduledRotation.id == run_id).values(**values))

    # ------------------------------------------------------------------ work
    def _rotate(self, run_id: int, name: str, report: RotationReport) -> None:
        try:
            info = self.vault.rotate(SCHEDULER, name)
        except KeyguardError as exc:
            self._failed(run_id, name, exc.message, report)
            return
        except Exception as exc:  # noqa: BLE001 - a scheduler must survive any one key
            self._failed(run_id, name, f"internal error ({type(exc).__name__})", report)
            return
        self._set(run_id, status="rewrapping", to_version=info.latest, error="")
        report.rotated.append((name, info.latest))
        log.info("scheduled rotation of %s: version %d", name, info.latest)
        self._rewrap(run_id, name, report)

    def _rewrap(self, run_id: int, name: str, report: RotationReport) -> None:
        try:
            result = DataInventory(self.vault).rewrap(SCHEDULER, name, self.batch)
        except KeyguardError as exc:
            self._set(run_id, error=f"rewrap: {exc.message}"[:500])
            return  # stays ``rewrapping``: the next pass goes on
        report.rewrapped[name] = report.rewrapped.get(name, 0) + result.rewrapped
        if result.remaining <= 0:
            self._set(run_id, status="done", finished_at=self.vault.clock.now(), error="")

    def _failed(self, run_id: int, name: str, message: str, report: RotationReport) -> None:
        now = self.vault.clock.now()
        self._set(run_id, status="failed", finished_at=now, error=message[:500])
        report.failed[name] = message
        log.warning("scheduled rotation of %s failed: %s", name, message)
        ts = format_ts(now)
        try:
            created = save_alerts(self.engine, [AlertUpdate(
                rule=ALERT_RULE, severity="high", key=name, group_key=group_key_of(ALERT_RULE, name, ""),
                title=f"scheduled rotation of {name} failed", details={"error": message, "run": run_id},
                ts=ts, is_new=False, first_ts=ts,
                event={"actor": SCHEDULER.actor, "op": "key.rotate", "key": name, "result": "error",
                       "reason": message, "ts": ts})])
            if self.dispatcher is not None:
                self.dispatcher.submit_saved(created)  # a repeat of an open alert counts, it is not re-sent
        except Exception:  # noqa: BLE001 - the failure is in the row and the audit log already
            log.exception("could not raise the alert for %s", name)
