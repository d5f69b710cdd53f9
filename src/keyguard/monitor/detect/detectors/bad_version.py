"""``bad_version``: use of a blocked version, or a refusal naming a compromised/disabled/destroyed state.

A version is judged by its state at the event's own time: the vault tells the
detector since when each version is blocked (``compromised[key][version]`` is that
epoch, ``-inf`` when unknown), so the legitimate uses before a compromise stay quiet
when they are replayed or imported afterwards (the state change itself is no use).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from keyguard.monitor.detect.columns import IndexedColumns
from keyguard.monitor.detect.detectors.base import Hits, ParamsOf, Signal, keyed
from keyguard.monitor.detect.rules import BadVersionParams
from keyguard.monitor.event import MonitorEvent

#: The vault's own state changes of a version: the change that blocks it is not a use of it.
STATE_OPS = frozenset({"key.compromise", "key.disable", "key.enable", "key.destroy"})


class BadVersion:
    """Any use of a version known to be compromised/disabled, or a refusal naming that state."""

    def __init__(self) -> None:
        self.compromised: dict[str, dict[int, float]] = {}  # key -> version -> blocked since (epoch)
        self._pattern: tuple[str, re.Pattern[str]] | None = None

    def observe(self, ev: MonitorEvent, epoch: float, params: BadVersionParams) -> Signal | None:
        if ev.key is None:
            return None
        return self._check(ev.key, ev.version, ev.op, ev.result, ev.reason, params, epoch)

    def observe_columns(self, batch: IndexedColumns, params_of: ParamsOf) -> Hits:
        """``observe`` over a batch: only a blocked version's uses and the refused calls can fire."""
        cols = batch.cols
        versions, ops, results, reasons, epochs = cols.version, cols.op, cols.result, cols.reason, cols.epoch
        hits: Hits = []
        with_blocked: set[str] = set()
        for key, indices in keyed(batch):
            params: BadVersionParams = params_of[key]
            blocked = set(self.compromised.get(key) or ()) | set(params.versions.get(key) or ())
            if not blocked:
                continue
            with_blocked.add(key)
            for i in indices:
                if versions[i] in blocked or results[i] != "ok":
                    signal = self._check(key, versions[i], ops[i], results[i], reasons[i], params, epochs[i])
                    if signal is not None:
                        hits.append((i, signal))
        keys = cols.key
        for i in batch.not_ok:
            refused_key = keys[i]
            if refused_key is None or refused_key in with_blocked or not reasons[i]:
                continue
            signal = self._check(
                refused_key, versions[i], ops[i], results[i], reasons[i], params_of[refused_key], epochs[i]
            )
            if signal is not None:
                hits.append((i, signal))
        return hits

    def _check(
        self,
        key: str,
        version: int | None,
        op: str,
        result: str,
        reason: str | None,
        params: BadVersionParams,
        epoch: float,
    ) -> Signal | None:
        listed = self.compromised.get(key)
        configured = params.versions.get(key)
        since = listed.get(version) if listed is not None and version is not None else None
        if (
            version is not None
            and op not in STATE_OPS
            and ((since is not None and epoch > since) or (configured and version in configured))
        ):
            return Signal(
                f"v{version}",
                f"use of blocked version {version} of key {key} ({op}, {result})",
                {"version": version, "op": op, "result": result},
            )
        if result != "ok" and reason:
            if self._pattern is None or self._pattern[0] != params.reason_pattern:
                self._pattern = (params.reason_pattern, re.compile(params.reason_pattern, re.I))
            found = self._pattern[1].search(reason)
            if found:
                return Signal(
                    f"v{version}" if version is not None else found.group(0).lower(),
                    f"attempt to use a {found.group(0).lower()} version of key {key} ({op})",
                    {"version": version, "op": op, "reason": reason[:200]},
                )
        return None

    def snapshot(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def blocked_since(compromised: Mapping[str, Iterable[int] | Mapping[int, float]]) -> dict[str, dict[int, float]]:
        """``{key: {version: since}}`` from versions (blocked for ever) or versions with their epoch."""
        out: dict[str, dict[int, float]] = {}
        for key, versions in compromised.items():
            if isinstance(versions, Mapping):
                out[key] = {int(v): float(at) for v, at in versions.items()}
            else:
                out[key] = dict.fromkeys((int(v) for v in versions), -math.inf)
        return out

    def restore(self, state: dict[str, Any]) -> None:
        del state
