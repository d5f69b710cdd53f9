"""Events as columns, for batch detection (``DetectionEngine.process_columns``).

:class:`EventColumns` holds one list per :class:`MonitorEvent` field (all of one
length) plus ``epoch``, the seconds of ``ts``. :class:`IndexedColumns` adds what
every detector's batch loop needs: the event indices of each key, in event order,
and the indices of the refused or failed calls, and the same as numpy arrays for the
detectors' array passes: epochs, each key's indices, and string columns
dictionary-coded (one small integer per event, one Python string per distinct value).

:data:`VECTORISED` chooses between those array passes and the per-event loops they
replace (kept as the reference: ``tests/monitor/test_columns.py`` checks both give
the same alerts and state).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, overload

import numpy as np

from keyguard.monitor.event import MonitorEvent
from keyguard.monitor.timeutil import _day_epoch


@dataclass(slots=True)
class EventColumns:
    """Equal-length columns of events; row ``i`` is one :class:`MonitorEvent`.

    Every detector reads the list columns for every event; the others are only
    read at a few events (the ones that fire, refused calls, a blocked key's), so
    a batch may give them as lazy sequences.

    ``natural_id`` is not kept: detection never reads it, so :meth:`event` returns
    it as ``None``.
    """

    ts: Sequence[str]
    epoch: list[float]
    op: Sequence[str]
    result: Sequence[str]
    key: Sequence[str | None]
    version: Sequence[int | None]
    actor: Sequence[str]
    source_ip: Sequence[str | None]
    user_agent: Sequence[str | None]
    reason: Sequence[str | None]
    request_id: Sequence[str | None]
    source: Sequence[str]
    source_line: Sequence[int]
    source_file: Sequence[str | None]
    # Optional: string columns already dictionary-coded, name -> (codes, values), as a batch
    # reader may give them for free; detection codes any other column itself.
    coded: dict[str, tuple[Any, list[Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.ts)
        for name in _COLUMNS:
            if len(getattr(self, name)) != n:
                raise ValueError(f"column {name} has {len(getattr(self, name))} values, ts has {n}")

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def from_events(cls, events: Iterable[MonitorEvent]) -> EventColumns:
        """Columns of ``events`` (in order), with ``epoch`` as ``timeutil.ts_epoch`` gives it."""
        rows = events if isinstance(events, list | tuple) else list(events)
        ts = [e.ts for e in rows]
        return cls(
            ts=ts,
            epoch=epochs_of(ts),
            op=[e.op for e in rows],
            result=[e.result for e in rows],
            key=[e.key for e in rows],
            version=[e.version for e in rows],
            actor=[e.actor for e in rows],
            source_ip=[e.source_ip for e in rows],
            user_agent=[e.user_agent for e in rows],
            reason=[e.reason for e in rows],
            request_id=[e.request_id for e in rows],
            source=[e.source for e in rows],
            source_line=[e.source_line for e in rows],
            source_file=[e.source_file for e in rows],
        )

    def prefetch(self, indices: Iterable[int], names: Iterable[str] = ()) -> None:
        """Tell lazy columns which events will be read (the ones that fire), so they fetch them at once.

        ``names``: only these columns will be read there (default: all).
        """
        wanted = sorted(set(indices))
        for name in tuple(names) or _COLUMNS:
            fetch = getattr(getattr(self, name), "prefetch", None)
            if fetch is not None:
                fetch(wanted)

    def record(self, i: int) -> dict[str, Any]:
        """Event ``i`` exactly as ``MonitorEvent.to_record()`` gives it."""
        return {
            "ts": self.ts[i],
            "actor": self.actor[i],
            "source_ip": self.source_ip[i],
            "user_agent": self.user_agent[i],
            "op": self.op[i],
            "key": self.key[i],
            "version": self.version[i],
            "result": self.result[i],
            "reason": self.reason[i],
            "request_id": self.request_id[i],
            "source": self.source[i],
            "source_line": self.source_line[i],
        }

    def event(self, i: int) -> MonitorEvent:
        """Event ``i`` as a :class:`MonitorEvent` (without ``natural_id``)."""
        return MonitorEvent(
            ts=self.ts[i],
            op=self.op[i],
            result=self.result[i],
            key=self.key[i],
            version=self.version[i],
            actor=self.actor[i],
            source_ip=self.source_ip[i],
            user_agent=self.user_agent[i],
            reason=self.reason[i],
            request_id=self.request_id[i],
            source=self.source[i],
            source_line=self.source_line[i],
            source_file=self.source_file[i],
        )


class CodedColumn(Sequence[Any]):
    """A dictionary-coded string column read as a sequence: value ``i`` is ``values[codes[i]]``.

    Detectors read the hot string columns through their codes (``EventColumns.coded``);
    values are looked up one by one only at the few events that fire, so no list of
    a value per event is ever built.
    """

    __slots__ = ("_codes", "_values")

    def __init__(self, codes: Any, values: list[Any]) -> None:
        self._codes, self._values = codes, values

    def __len__(self) -> int:
        return len(self._codes)

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            values = self._values
            return [values[c] for c in self._codes[index].tolist()]
        return self._values[self._codes[index]]

    def __iter__(self) -> Iterator[Any]:
        values = self._values
        return (values[c] for c in self._codes.tolist())


_COLUMNS = tuple(f.name for f in fields(EventColumns) if f.name != "coded")
#: Detectors run their numpy array passes (False: the per-event loops, the reference).
VECTORISED = True
_SECONDS = {f"{s:02d}": s for s in range(61)}


def epochs_of(stamps: list[str]) -> list[float]:
    """``timeutil.ts_epoch`` of each fixed-width timestamp, bit for bit, memoised per minute.

    ``ts_epoch`` sums the whole seconds as integers and adds the fraction last, so the
    seconds up to the minute can be shared by every timestamp of that minute, and a
    zero fraction adds exactly nothing.
    """
    minutes: dict[str, int] = {}
    seconds = _SECONDS
    out: list[float] = []
    append = out.append
    for ts in stamps:
        head = ts[:16]
        base = minutes.get(head)
        if base is None:
            base = minutes[head] = _day_epoch(ts[0:10]) + int(ts[11:13]) * 3600 + int(ts[14:16]) * 60
        try:
            base += seconds[ts[17:19]]
        except KeyError:
            base += int(ts[17:19])
        frac = ts[20:26]
        append(float(base) if frac == "000000" else base + int(frac) / 1_000_000)
    return out


@dataclass(slots=True)
class IndexedColumns:
    """Columns plus the per-key and refused-call indices that detectors iterate over."""

    cols: EventColumns
    by_key: dict[str | None, list[int]]  # key -> indices of its events, in order (None: keyless)
    not_ok: list[int]  # indices whose result is not "ok", in order
    _epochs: Any = None
    _arrays: dict[str | None, Any] = field(default_factory=dict)
    _coded: dict[str, tuple[Any, list[Any]]] = field(default_factory=dict)
    _given: dict[str, Any] = field(default_factory=dict)

    def given(self, name: str) -> Any:
        """For each code of column ``name`` (see :meth:`coded`), whether its value is set (not None nor empty)."""
        found = self._given.get(name)
        if found is None:
            dictionary = self.coded(name)[1]
            found = self._given[name] = np.fromiter((bool(v) for v in dictionary), dtype=bool, count=len(dictionary))
        return found

    def epochs(self) -> Any:
        """``cols.epoch`` as a float64 array."""
        if self._epochs is None:
            self._epochs = np.asarray(self.cols.epoch, dtype=np.float64)
        return self._epochs

    def indices(self, key: str | None) -> Any:
        """``by_key[key]`` as an int64 array."""
        found = self._arrays.get(key)
        if found is None:
            found = self._arrays[key] = np.asarray(self.by_key[key], dtype=np.int64)
        return found

    def coded(self, name: str) -> tuple[Any, list[Any]]:
        """Column ``name`` dictionary-coded: (int64 code per event, the value of each code)."""
        found = self._coded.get(name) or self.cols.coded.get(name)
        if found is None:
            lookup: dict[Any, int] = {}
            codes = np.fromiter(
                (lookup.setdefault(v, len(lookup)) for v in getattr(self.cols, name)),
                dtype=np.int64,
                count=len(self.cols),
            )
            found = (codes, list(lookup))
        self._coded[name] = found
        return found

    @classmethod
    def of(cls, cols: EventColumns) -> IndexedColumns:
        """Index ``cols`` (one pass over keys, one over results; array passes when they are coded)."""
        if VECTORISED and "key" in cols.coded and "result" in cols.coded:
            return cls._of_coded(cols)
        by_key: dict[str | None, list[int]] = {}
        for i, key in enumerate(cols.key):
            try:
                by_key[key].append(i)
            except KeyError:
                by_key[key] = [i]
        not_ok = [i for i, result in enumerate(cols.result) if result != "ok"]
        return cls(cols, by_key, not_ok)

    @classmethod
    def _of_coded(cls, cols: EventColumns) -> IndexedColumns:
        """:meth:`of` from the coded key and result columns: one stable sort of the key codes."""
        codes, keys = cols.coded["key"]
        order = np.argsort(codes, kind="stable")
        sizes = np.bincount(codes, minlength=len(keys))
        starts = np.cumsum(sizes) - sizes
        present = np.flatnonzero(sizes)
        by_key: dict[str | None, list[int]] = {}
        arrays: dict[str | None, Any] = {}
        # keys in the order of their first event, as the loop would meet them
        for code in present[np.argsort(order[starts[present]], kind="stable")].tolist():
            indices = order[starts[code] : starts[code] + sizes[code]]
            by_key[keys[code]] = indices.tolist()
            arrays[keys[code]] = indices
        results, values = cols.coded["result"]
        fine = [n for n, value in enumerate(values) if value == "ok"]
        not_ok = np.flatnonzero(~np.isin(results, fine)).tolist()
        return cls(cols, by_key, not_ok, _arrays=arrays)
