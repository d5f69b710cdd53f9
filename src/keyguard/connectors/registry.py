"""Configured connectors opened into adapters, and references resolved to the adapter that acts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from keyguard.clock import Clock
from keyguard.connectors.base import Adapter, CheckReport, Identified, Inventoried, Step
from keyguard.connectors.config import ConnectorConfig, SecretSource
from keyguard.connectors.errors import UnknownReferenceError, UnsupportedStepError
from keyguard.connectors.refs import Ref, check_kind, parse_ref
from keyguard.connectors.secret import Secret


@dataclass
class Connector:
    """One ``[connectors.NAME]``: its adapters by kind and its check."""

    name: str
    type: str
    adapters: dict[str, Adapter]
    checker: Callable[[], CheckReport]
    closers: list[Callable[[], None]] = field(default_factory=list)

    def adapter(self, kind: str) -> Adapter:
        """The adapter for ``kind``; BadReferenceError names the kinds there are."""
        check_kind(Ref(self.name, kind, "-"), self.type)
        return self.adapters[kind]

    def check(self) -> CheckReport:
        """Reachable, and allowed to do what the playbook needs."""
        return self.checker()

    def identify(self, leaked: Secret) -> list[Identified]:
        """Every resource of this connector that owns ``leaked`` (usually none or one)."""
        found: list[Identified] = []
        for adapter in self.adapters.values():
            if adapter.supports(Step.IDENTIFY):
                hit = adapter.identify(leaked)
                if hit is not None:
                    found.append(hit)
        return found

    def inventory(self) -> list[Inventoried]:
        """The credentials and keys this connector sees."""
        out: list[Inventoried] = []
        for adapter in self.adapters.values():
            try:
                out += adapter.inventory()
            except UnsupportedStepError:
                continue
        return out

    def close(self) -> None:
        """Release connections."""
        for closer in self.closers:
            closer()


def open_connector(
    config: ConnectorConfig,
    *,
    environ: Mapping[str, str] | None = None,
    source: SecretSource | None = None,
    clock: Clock | None = None,
) -> Connector:
    """Build the adapters of one connector (its client library imported only now)."""
    if config.type == "aws":
        from keyguard.connectors.aws_check import check_aws
        from keyguard.connectors.aws_iam import IamAccessKey
        from keyguard.connectors.aws_kms import KmsKey
        from keyguard.connectors.aws_secrets import SecretsManagerSecret
        from keyguard.connectors.aws_session import AwsSession

        aws = AwsSession(config, environ=environ, source=source)
        adapters: dict[str, Adapter] = {
            "access-key": IamAccessKey(config.name, aws, clock),
            "kms-key": KmsKey(config.name, aws, clock),
            "secret": SecretsManagerSecret(config.name, aws, clock),
        }
        return Connector(config.name, "aws", adapters, lambda: check_aws(aws))
    if config.type == "vault":
        from keyguard.connectors.vault_client import VaultClient, check_vault
        from keyguard.connectors.vault_kv import VaultKv
        from keyguard.connectors.vault_token import VaultToken
        from keyguard.connectors.vault_transit import VaultTransit

        vault = VaultClient(config, environ=environ, source=source)
        adapters = {
            "token": VaultToken(config.name, vault, clock),
            "kv": VaultKv(config.name, vault, clock),
            "transit": VaultTransit(config.name, vault, clock),
        }
        return Connector(config.name, "vault", adapters, lambda: check_vault(vault), [vault.close])
    if config.type == "postgresql":
        from keyguard.connectors.postgres_role import PostgresAdmin, PostgresRole, check_postgres

        pg = PostgresAdmin(config, environ=environ, source=source)
        return Connector(config.name, "postgresql", {"role": PostgresRole(config.name, pg, clock)},
                         lambda: check_postgres(pg), [pg.close])
    from keyguard.connectors.redis_user import RedisAdmin, RedisUser, check_redis

    rd = RedisAdmin(config, environ=environ, source=source)
    return Connector(config.name, "redis", {"user": RedisUser(config.name, rd, clock)},
                     lambda: check_redis(rd), [rd.close])


def resolve(ref: Ref | str, connectors: Mapping[str, Connector]) -> tuple[Ref, Adapter]:
    """The reference parsed and the adapter that acts on it; one clear line when nothing matches."""
    parsed = parse_ref(ref) if isinstance(ref, str) else ref
    connector = connectors.get(parsed.connector)
    if connector is None:
        raise UnknownReferenceError(
            f"unknown connector {parsed.connector!r} in {parsed}",
            hint="configured: " + (", ".join(sorted(connectors)) or "none") + " ([connectors.NAME] in keyguard.toml)",
        )
    return parsed, connector.adapter(parsed.kind)
