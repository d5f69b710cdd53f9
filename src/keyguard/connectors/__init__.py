"""Connectors: keyguard's playbook on keys and credentials held elsewhere (SPEC §7).

One :class:`~keyguard.connectors.base.Adapter` per kind of resource (AWS access keys,
KMS keys and Secrets Manager secrets; Vault/OpenBao tokens, KV v2 secrets and transit
keys; PostgreSQL roles; Redis ACL users), each declaring the steps it performs, plus
:mod:`~keyguard.connectors.external` for what no connector reaches. Client libraries
are imported only when a connector of their type is opened.
"""

from keyguard.connectors.base import (
    Adapter,
    CheckReport,
    Identified,
    Inventoried,
    Outcome,
    PermissionCheck,
    Proof,
    Rotation,
    Step,
    Switched,
    UsageRecord,
)
from keyguard.connectors.config import ConnectorConfig, SecretSource, load_connectors, parse_connectors
from keyguard.connectors.refs import KINDS, Ref, parse_ref
from keyguard.connectors.registry import Connector, open_connector, resolve
from keyguard.connectors.secret import Secret

__all__ = [
    "Adapter",
    "CheckReport",
    "Connector",
    "ConnectorConfig",
    "Identified",
    "Inventoried",
    "KINDS",
    "Outcome",
    "PermissionCheck",
    "Proof",
    "Ref",
    "Rotation",
    "Secret",
    "SecretSource",
    "Step",
    "Switched",
    "UsageRecord",
    "load_connectors",
    "open_connector",
    "parse_connectors",
    "parse_ref",
    "resolve",
]
