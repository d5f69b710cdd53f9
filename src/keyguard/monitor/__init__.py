"""Monitoring and alerting: import foreign logs, detect misuse of keys, deliver alerts.

Layers, one way: ``event``/``timeutil`` (pure) → ``importers`` (parse a source into
:class:`~keyguard.monitor.event.MonitorEvent`) → ``detect`` (pure streaming engine over
rules from ``rules/*.yaml``) → ``store`` (tables, bulk insert, alerts) → ``sinks`` and
``watch`` (I/O). Nothing here imports ``keyguard.store.models``, so the table module
can be registered there without a cycle.
"""

from __future__ import annotations

from keyguard.monitor.event import MonitorEvent

__all__ = ["MonitorEvent"]
