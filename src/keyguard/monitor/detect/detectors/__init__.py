"""One small detector class per rule kind, one module each; each keeps bounded per-key state.

A detector sees every event (in time order) through ``observe`` and returns a
:class:`Signal` when the rule fires. ``observe_columns`` does the same for a
whole batch of events held as columns, in one loop per key, and must leave the
same state and return the same signals as ``observe`` called on each event in turn
(detectors share no state, so each can run over the batch on its own). State is
plain JSON-able data so that the engine can snapshot it for ``watch`` restarts.

:data:`DETECTORS` maps a rule's ``kind`` (``rules/*.yaml``) to its detector; a new
kind is a module here and a line in that registry.
"""

from __future__ import annotations

from keyguard.monitor.detect.detectors.bad_version import BadVersion
from keyguard.monitor.detect.detectors.base import Detector, Signal
from keyguard.monitor.detect.detectors.denied_burst import DeniedBurst
from keyguard.monitor.detect.detectors.new_value import NewValue
from keyguard.monitor.detect.detectors.off_hours import OffHours
from keyguard.monitor.detect.detectors.rate_spike import RateSpike
from keyguard.monitor.detect.detectors.two_networks import TwoNetworks

DETECTORS: dict[str, type[Detector]] = {
    "new_value": NewValue,
    "rate_spike": RateSpike,
    "bad_version": BadVersion,
    "denied_burst": DeniedBurst,
    "off_hours": OffHours,
    "two_networks": TwoNetworks,
}

__all__ = [
    "DETECTORS", "BadVersion", "DeniedBurst", "Detector", "NewValue", "OffHours", "RateSpike", "Signal",
    "TwoNetworks",
]  # fmt: skip
