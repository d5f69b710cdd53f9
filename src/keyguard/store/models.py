"""Every table of keyguard, imported so that ``Base.metadata`` is complete.

Feature packages add their table modules to the import list below.
"""

from __future__ import annotations

from keyguard.incident import tables as _incident_tables  # noqa: F401

# Import table modules for their side effect of registering on Base.metadata.
from keyguard.store import monitor_tables as _monitor_tables  # noqa: F401
from keyguard.store import tables as _vault_tables  # noqa: F401
from keyguard.store.tables import Base

__all__ = ["Base"]
