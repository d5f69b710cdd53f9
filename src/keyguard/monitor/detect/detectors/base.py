"""What every detector shares: the :class:`Signal` it returns, the :class:`Detector` protocol
the engine calls, and the helpers of ``observe_columns`` (keys of a batch, keys first seen)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from keyguard.monitor.detect import columns
from keyguard.monitor.detect.columns import IndexedColumns
from keyguard.monitor.event import MonitorEvent


@dataclass(slots=True, frozen=True)
class Signal:
    """The rule fired: ``discriminator`` separates alerts of one rule and key."""

    discriminator: str
    title: str
    details: dict[str, Any]


Hits = list[tuple[int, Signal]]  # (event index in the batch, signal), in any order
ParamsOf = Mapping[str | None, Any]  # each key of the batch (and None) -> the parameters of its tier
Created = list[tuple[int, str, Any]]  # (index of the creating event, key, new state)


def add_in_order(states: dict[str, Any], created: Created) -> None:
    """Add keys first seen in a batch in the order ``observe`` would have added them."""
    created.sort(key=lambda item: item[0])
    for _, key, state in created:
        states[key] = state


def keyed(batch: IndexedColumns) -> Iterator[tuple[str, list[int]]]:
    """Each key of the batch with the indices of its events (keyless events left out)."""
    for key, indices in batch.by_key.items():
        if key is not None:
            yield key, indices


class Detector(Protocol):
    """What the engine needs of a detector."""

    def observe(self, ev: MonitorEvent, epoch: float, params: Any) -> Signal | None: ...

    def observe_columns(self, batch: IndexedColumns, params_of: ParamsOf) -> Hits: ...

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...


def subject_of(ev: MonitorEvent) -> str:
    return ev.key if ev.key is not None else f"actor:{ev.actor}"


def vectorised() -> bool:
    """Whether detectors run their array passes (see ``columns.VECTORISED``)."""
    return columns.VECTORISED


class TimedPerKey:
    """``observe_columns`` for detectors that read only each key's event times."""

    def observe_columns(self, batch: IndexedColumns, params_of: ParamsOf) -> Hits:
        """``observe`` over a batch: one array pass per key (or the reference loop)."""
        hits: Hits = []
        if vectorised():
            epochs = batch.epochs()
            for key, _ in keyed(batch):
                self._observe_array(key, batch.indices(key), epochs, batch.cols.epoch, params_of[key], hits)
            return hits
        for key, indices in keyed(batch):
            self._observe_key(key, indices, batch.cols.epoch, params_of[key], hits)
        return hits

    def _observe_key(self, key: str, indices: list[int], epoch: list[float], params: Any, hits: Hits) -> None:
        raise NotImplementedError

    def _observe_array(self, key: str, indices: Any, epochs: Any, epoch: list[float], params: Any, hits: Hits) -> None:
        """``_observe_key`` with the key's indices and the epochs as numpy arrays."""
        raise NotImplementedError
