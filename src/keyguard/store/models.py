"""Every table of keyguard, imported so that ``Base.metadata`` is complete.

Each room's tables live in the store (``tables`` for the vault, ``incident_tables``,
``monitor_tables``): storage sits below the domains it stores.
"""

from __future__ import annotations

# Import table modules for their side effect of registering on Base.metadata.
from keyguard.store import incident_tables as _incident_tables  # noqa: F401
from keyguard.store import jwt_tables as _jwt_tables  # noqa: F401
from keyguard.store import lease_tables as _lease_tables  # noqa: F401
from keyguard.store import monitor_tables as _monitor_tables  # noqa: F401
from keyguard.store import secret_tables as _secret_tables  # noqa: F401
from keyguard.store import tables as _vault_tables  # noqa: F401
from keyguard.store import webauthn_tables as _webauthn_tables  # noqa: F401
from keyguard.store.tables import Base

__all__ = ["Base"]
