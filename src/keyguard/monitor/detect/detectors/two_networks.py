"""``two_networks``: one key used from two public networks (/16, /48) within a window."""

from __future__ import annotations

from typing import Any

import numpy as np

from keyguard.monitor.detect.columns import EventColumns, IndexedColumns
from keyguard.monitor.detect.detectors.base import Created, Hits, ParamsOf, Signal, add_in_order, keyed, vectorised
from keyguard.monitor.detect.rules import TwoNetworksParams
from keyguard.monitor.event import MonitorEvent

_PRIVATE_172 = {f"172.{i}" for i in range(16, 32)}


def network_of(ip: str, ignore_private: bool) -> str | None:
    """The /16 of an IPv4 address or the /48 of an IPv6 one; None for private if asked."""
    if ":" in ip:
        lowered = ip.lower()
        if lowered.startswith("::ffff:"):
            return network_of(lowered[7:], ignore_private)
        if ignore_private and (lowered.startswith(("fc", "fd", "fe80")) or lowered == "::1"):
            return None
        return ":".join(lowered.split(":")[:3])
    parts = ip.split(".", 2)
    if len(parts) < 3 or not (parts[0].isdigit() and parts[1].isdigit()):
        return None  # not an address: "AWS Internal", "kms.amazonaws.com", ...
    net = f"{parts[0]}.{parts[1]}"
    if ignore_private and (parts[0] in ("10", "127") or net == "192.168" or net in _PRIVATE_172 or net == "169.254"):
        return None
    return net


class TwoNetworks:
    """The same key used from two different networks within a short window."""

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, float]] = {}
        self._networks: dict[bool, dict[str, str | None]] = {}  # ignore_private -> {ip: network_of(ip)}

    def observe(self, ev: MonitorEvent, epoch: float, params: TwoNetworksParams) -> Signal | None:
        if ev.key is None or not ev.source_ip:
            return None
        net = network_of(ev.source_ip, params.ignore_private)
        if net is None:
            return None
        seen = self.keys.get(ev.key)
        if seen is None:
            self.keys[ev.key] = {net: epoch}
            return None
        other = _refresh(seen, net, epoch, params.window_seconds)
        if other is None:
            return None
        return self._signal(ev.key, net, other, ev.source_ip, params)

    def observe_columns(self, batch: IndexedColumns, params_of: ParamsOf) -> Hits:
        """``observe`` over a batch, one loop per key, with each IP's network looked up once."""
        hits: Hits = []
        created: Created = []
        arrays = vectorised()
        networks: dict[bool, tuple[Any, list[str]]] = {}
        for key, indices in keyed(batch):
            params: TwoNetworksParams = params_of[key]
            if arrays:
                coded = networks.get(params.ignore_private)
                if coded is None:
                    coded = networks[params.ignore_private] = self._coded_networks(batch, params.ignore_private)
                self._observe_array(key, batch, coded, params, hits, created)
            else:
                self._observe_key(key, indices, batch.cols, params, hits, created, self.keys.get(key))
        add_in_order(self.keys, created)
        return hits

    def _coded_networks(self, batch: IndexedColumns, ignore_private: bool) -> tuple[Any, list[str]]:
        """Each event's network as a code (-1: none), and the network of each code."""
        codes, ips = batch.coded("source_ip")
        cache = self._network_cache(ignore_private)
        names: dict[str, int] = {}
        of_ip = np.full(len(ips) + 1, -1, dtype=np.int64)  # the last entry stays -1
        for n, ip in enumerate(ips):
            if not ip:
                continue
            try:
                net = cache[ip]
            except KeyError:
                net = cache[ip] = network_of(ip, ignore_private)
            if net is not None:
                of_ip[n] = names.setdefault(net, len(names))
        return of_ip[codes], list(names)

    def _observe_array(
        self,
        key: str,
        batch: IndexedColumns,
        coded: tuple[Any, list[str]],
        params: TwoNetworksParams,
        hits: Hits,
        created: Created,
    ) -> None:
        """``_observe_key`` with the leading run of one network done at once: while a key is seen from
        a single network, each event only moves that network's time. The loop takes it from the first
        event of another network."""
        codes, names = coded
        indices = batch.indices(key)
        nets = codes[indices]
        indices = indices[nets >= 0]
        if not len(indices):
            return
        nets = nets[nets >= 0]
        epoch = batch.cols.epoch
        seen = self.keys.get(key)
        if seen is None:
            only = int(nets[0])
            seen = {names[only]: epoch[int(indices[0])]}
            created.append((int(indices[0]), key, seen))
        elif len(seen) == 1 and next(iter(seen)) in names:
            only = names.index(next(iter(seen)))
        else:
            only = -1
        other = np.flatnonzero(nets != only)
        run = int(other[0]) if len(other) else len(nets)
        if run:
            seen[names[only]] = epoch[int(indices[run - 1])]
        if run < len(nets):
            self._observe_key(key, indices[run:].tolist(), batch.cols, params, hits, created, seen)

    def _observe_key(
        self,
        key: str,
        indices: list[int],
        cols: EventColumns,
        params: TwoNetworksParams,
        hits: Hits,
        created: Created,
        seen: dict[str, float] | None,
    ) -> None:
        ips, epoch, window = cols.source_ip, cols.epoch, params.window_seconds
        nets = self._network_cache(params.ignore_private)
        for i in indices:
            ip = ips[i]
            if not ip:
                continue
            try:
                net = nets[ip]
            except KeyError:
                net = nets[ip] = network_of(ip, params.ignore_private)
            if net is None:
                continue
            if seen is None:
                seen = {net: epoch[i]}
                created.append((i, key, seen))
            elif len(seen) == 1 and net in seen:
                seen[net] = epoch[i]  # what _refresh leaves in this case, whether or not it expired
            else:
                other = _refresh(seen, net, epoch[i], window)
                if other is not None:
                    hits.append((i, self._signal(key, net, other, ip, params)))

    def _network_cache(self, ignore_private: bool) -> dict[str, str | None]:
        cache = self._networks.get(ignore_private)
        if cache is None or len(cache) > 100_000:
            cache = self._networks[ignore_private] = {}
        return cache

    @staticmethod
    def _signal(key: str, net: str, other: str, source_ip: str, params: TwoNetworksParams) -> Signal:
        pair = "|".join(sorted((net, other)))
        return Signal(
            pair,
            f"key {key} used from two networks within {params.window_seconds:.0f}s ({other}.x and {net}.x)",
            {"networks": sorted((net, other)), "source_ip": source_ip},
        )

    def snapshot(self) -> dict[str, Any]:
        return {k: dict(v) for k, v in self.keys.items()}

    def restore(self, state: dict[str, Any]) -> None:
        self.keys = {k: dict(v) for k, v in state.items()}


def _refresh(seen: dict[str, float], net: str, epoch: float, window: float) -> str | None:
    """Drop networks last seen before the window, note ``net`` now; the first other one left."""
    horizon = epoch - window
    other = None
    for known, last in list(seen.items()):
        if last < horizon:
            del seen[known]
        elif known != net and other is None:
            other = known
    seen[net] = epoch
    return other
