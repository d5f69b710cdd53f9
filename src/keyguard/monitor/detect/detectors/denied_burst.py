"""``denied_burst``: many refused calls in a short window on one key (or one actor without a key)."""

from __future__ import annotations

from collections import deque
from typing import Any

from keyguard.monitor.detect.columns import IndexedColumns
from keyguard.monitor.detect.detectors.base import Hits, ParamsOf, Signal, subject_of
from keyguard.monitor.detect.rules import DeniedBurstParams
from keyguard.monitor.event import MonitorEvent


class DeniedBurst:
    """Many refused calls in a short window for one key (or one actor without a key)."""

    def __init__(self) -> None:
        self.keys: dict[str, deque[float]] = {}

    def observe(self, ev: MonitorEvent, epoch: float, params: DeniedBurstParams) -> Signal | None:
        if ev.result == "ok" or ev.result not in params.results:
            return None
        return self._refused(subject_of(ev), epoch, params)

    def observe_columns(self, batch: IndexedColumns, params_of: ParamsOf) -> Hits:
        """``observe`` over a batch: only the refused or failed calls are looked at."""
        cols = batch.cols
        hits: Hits = []
        for i in batch.not_ok:
            key = cols.key[i]
            params: DeniedBurstParams = params_of[key]
            if cols.result[i] not in params.results:
                continue
            subject = key if key is not None else f"actor:{cols.actor[i]}"
            signal = self._refused(subject, cols.epoch[i], params)
            if signal is not None:
                hits.append((i, signal))
        return hits

    def _refused(self, subject: str, epoch: float, params: DeniedBurstParams) -> Signal | None:
        window = self.keys.get(subject)
        if window is None or window.maxlen != params.threshold:
            window = self.keys[subject] = deque(window or (), maxlen=params.threshold)
        window.append(epoch)
        if len(window) >= params.threshold and epoch - window[0] <= params.window_seconds:
            window.clear()
            return Signal(
                "",
                f"burst of refused calls on {subject}: {params.threshold} within {params.window_seconds:.0f}s",
                {"refused": params.threshold, "window_seconds": params.window_seconds},
            )
        return None

    def snapshot(self) -> dict[str, Any]:
        return {k: list(v) for k, v in self.keys.items()}

    def restore(self, state: dict[str, Any]) -> None:
        self.keys = {k: deque(v) for k, v in state.items()}
