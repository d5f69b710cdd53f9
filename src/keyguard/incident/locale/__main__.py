"""``python -m keyguard.incident.locale``: re-extract the template and merge it into the catalogs."""

from __future__ import annotations

from keyguard.incident.locale import update

update()
