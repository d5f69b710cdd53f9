"""``new_value``: a new source IP, user agent or actor for a key once its baseline is learned."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from keyguard.monitor.detect.columns import IndexedColumns
from keyguard.monitor.detect.detectors.base import Created, Hits, ParamsOf, Signal, add_in_order, keyed, vectorised
from keyguard.monitor.detect.rules import NewValueParams
from keyguard.monitor.event import MonitorEvent


class NewValue:
    """New source IP / user agent / actor for a key once its baseline is learned."""

    def __init__(self) -> None:
        self.keys: dict[str, list[Any]] = {}  # key -> [first_epoch, count, set(values)]

    def observe(self, ev: MonitorEvent, epoch: float, params: NewValueParams) -> Signal | None:
        value = getattr(ev, params.field)
        if ev.key is None or not value:
            return None
        state = self.keys.get(ev.key)
        if state is None:
            self.keys[ev.key] = [epoch, 1, {value}]
            return None
        state[1] += 1
        seen: set[str] = state[2]
        if value in seen:
            return None
        learned = state[1] > params.learn_events and epoch - state[0] >= params.learn_seconds
        if len(seen) < params.max_values:
            seen.add(value)
        if not learned:
            return None
        return self._signal(ev.key, value, len(seen), params)

    def observe_columns(self, batch: IndexedColumns, params_of: ParamsOf) -> Hits:
        """``observe`` over a batch: one loop per key, counting and set membership inline."""
        hits: Hits = []
        created: Created = []
        arrays = vectorised()
        for key, indices in keyed(batch):
            params: NewValueParams = params_of[key]
            values: Sequence[str | None] = getattr(batch.cols, params.field)
            if not arrays or not self._observe_array(key, batch, params, hits, created):
                self._observe_key(key, indices, values, batch.cols.epoch, params, hits, created)
        add_in_order(self.keys, created)
        return hits

    def _observe_array(
        self, key: str, batch: IndexedColumns, params: NewValueParams, hits: Hits, created: Created
    ) -> bool:
        """``_observe_key`` on the dictionary-coded column: only each value's first event is looked at.

        False (nothing changed) when the key's set of values would reach ``max_values``:
        past it a value is no longer remembered, and the loop decides.
        """
        codes, dictionary = batch.coded(params.field)
        indices = batch.indices(key)
        mine = codes[indices]
        kept = batch.given(params.field)[mine]
        positions, mine = indices[kept], mine[kept]
        if not len(positions):
            return True
        state = self.keys.get(key)
        seen: set[str] = state[2] if state is not None else set()
        found = np.flatnonzero(np.bincount(mine, minlength=len(dictionary))).tolist()
        fresh = sorted(
            (int(np.argmax(mine == code)), dictionary[code]) for code in found if dictionary[code] not in seen
        )
        if len(seen) + len(fresh) > params.max_values:
            return False
        epoch = batch.cols.epoch
        count = 0
        if state is None:  # the first event with a value creates the key's state, and does not fire
            _, value = fresh.pop(0)
            state = [epoch[int(positions[0])], 0, {value}]
            created.append((int(positions[0]), key, state))
            seen = state[2]
        else:
            count = state[1]
        first: float = state[0]
        for at, value in fresh:
            i = int(positions[at])
            seen.add(value)
            if count + at + 1 > params.learn_events and epoch[i] - first >= params.learn_seconds:
                hits.append((i, self._signal(key, value, len(seen), params)))
        state[1] = count + len(positions)
        return True

    def _observe_key(
        self,
        key: str,
        indices: list[int],
        values: Sequence[str | None],
        epoch: list[float],
        params: NewValueParams,
        hits: Hits,
        created: Created,
    ) -> None:
        rest = iter(indices)
        state = self.keys.get(key)
        if state is None:
            for i in rest:
                value = values[i]
                if value:
                    state = [epoch[i], 1, {value}]
                    created.append((i, key, state))
                    break
            else:
                return
        first: float = state[0]
        count: int = state[1]
        seen: set[str] = state[2]
        learn_events, learn_seconds, max_values = params.learn_events, params.learn_seconds, params.max_values
        for i in rest:
            value = values[i]
            if not value:
                continue
            count += 1
            if value in seen:
                continue
            learned = count > learn_events and epoch[i] - first >= learn_seconds
            if len(seen) < max_values:
                seen.add(value)
            if learned:
                hits.append((i, self._signal(key, value, len(seen), params)))
        state[1] = count

    @staticmethod
    def _signal(key: str, value: str, seen: int, params: NewValueParams) -> Signal:
        label = params.field.replace("_", " ")
        return Signal(
            value[:200],
            f"new {label} {value[:80]} for key {key}",
            {params.field: value[:512], "known_values": seen - 1},
        )

    def snapshot(self) -> dict[str, Any]:
        return {k: [s[0], s[1], sorted(s[2])] for k, s in self.keys.items()}

    def restore(self, state: dict[str, Any]) -> None:
        self.keys = {k: [s[0], s[1], set(s[2])] for k, s in state.items()}
