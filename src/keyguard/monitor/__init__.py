"""Monitoring and alerting: import foreign logs, detect misuse of keys, deliver alerts.

Layers, one way: ``event``/``timeutil`` (pure) → ``importers`` (parse a source into
:class:`~keyguard.monitor.event.MonitorEvent`) → ``detect`` (pure streaming engine over
rules from ``rules/*.yaml``) → ``segments``/``batches`` → ``alerts`` → ``pipeline`` →
``store`` → ``detector_state`` → ``ingest``, ``watch`` and ``sinks`` (I/O). The tables
are :mod:`keyguard.store.monitor_tables`, in the store room below this one.
"""

from __future__ import annotations

from keyguard.monitor.event import MonitorEvent

__all__ = ["MonitorEvent"]
