"""``[connectors.NAME]`` tables of ``$KEYGUARD_HOME/keyguard.toml`` (SPEC §7).

Credentials are never written there in plaintext: a field ending in ``_env`` names an
environment variable, and a :class:`SecretSource` (the sealed store behind
``keyguard connector add --secret-stdin``) may supply the others.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from keyguard.clock import parse_span
from keyguard.connectors.errors import ConnectorConfigError
from keyguard.connectors.refs import EXTERNAL, KINDS, NAME_RE
from keyguard.connectors.secret import Secret
from keyguard.errors import UsageError

#: Plain settings per type, and the credential fields (given as ``FIELD_env`` or sealed).
SETTINGS: dict[str, frozenset[str]] = {
    "aws": frozenset({"endpoint_url", "region", "cloudtrail_bucket", "cloudtrail_prefix", "timeout"}),
    "vault": frozenset({"url", "kv_mount", "transit_mount", "audit_log", "audit_path", "namespace", "timeout"}),
    "postgresql": frozenset({"dsn", "log_file", "timeout"}),
    "redis": frozenset({"url", "username", "timeout"}),
}
CREDENTIALS: dict[str, frozenset[str]] = {
    "aws": frozenset({"access_key_id", "secret_access_key", "session_token"}),
    "vault": frozenset({"token"}),
    "postgresql": frozenset({"password"}),
    "redis": frozenset({"password"}),
}
REQUIRED: dict[str, frozenset[str]] = {
    "aws": frozenset(),
    "vault": frozenset({"url"}),
    "postgresql": frozenset({"dsn"}),
    "redis": frozenset({"url"}),
}
#: ``[connectors.NAME.roles.ROLE]`` settings: templates of dynamic credentials (``creds issue``).
ROLE_SETTINGS: dict[str, frozenset[str]] = {
    "postgresql": frozenset({"template", "default_ttl", "max_ttl"}),
    "redis": frozenset({"template", "rules", "default_ttl", "max_ttl"}),
}
DEFAULTS: dict[str, dict[str, str]] = {
    "aws": {"region": "us-east-1"},
    "vault": {"kv_mount": "secret", "transit_mount": "transit", "audit_path": "file"},
    "postgresql": {},
    "redis": {},
}


class SecretSource(Protocol):
    """Where sealed connector credentials come from (``connector add --secret-stdin``)."""

    def lookup(self, connector: str, field: str) -> Secret | None: ...


@dataclass(frozen=True)
class ConnectorConfig:
    """One ``[connectors.NAME]`` table, checked."""

    name: str
    type: str
    settings: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, str] = field(default_factory=dict)
    roles: dict[str, dict[str, str]] = field(default_factory=dict)

    def get(self, key: str, default: str | None = None) -> str | None:
        """A plain setting, or its default."""
        return self.settings.get(key, DEFAULTS[self.type].get(key, default))

    def timeout(self) -> float:
        """Seconds to wait for the system on each call (default 10)."""
        try:
            return float(self.settings.get("timeout", "10"))
        except ValueError:
            raise ConnectorConfigError(f"connector {self.name!r}: timeout is not a number") from None

    def credential(
        self, field_name: str, *, environ: Mapping[str, str] | None = None, source: SecretSource | None = None
    ) -> Secret | None:
        """The credential ``field_name`` from its ``_env`` variable or the sealed store, else None."""
        env = os.environ if environ is None else environ
        var = self.secret_env.get(field_name)
        if var is not None:
            value = env.get(var)
            if not value:
                raise ConnectorConfigError(
                    f"connector {self.name!r}: environment variable {var} ({field_name}) is not set",
                    hint=f"export {var}=… or store it with `keyguard connector add {self.name} --secret-stdin "
                    f"{field_name}`",
                )
            return Secret(value)
        return source.lookup(self.name, field_name) if source is not None else None


def parse_connector(name: str, table: Mapping[str, Any]) -> ConnectorConfig:
    """Check one table; refuses unknown keys and credentials written in plaintext."""
    where = f"connector {name!r}"
    if not NAME_RE.match(name) or name == EXTERNAL:
        raise ConnectorConfigError(f"invalid connector name {name!r}", hint="[a-z0-9][a-z0-9._-]*, not 'external'")
    kind = table.get("type")
    if kind not in KINDS:
        raise ConnectorConfigError(f"{where}: type must be one of {', '.join(sorted(KINDS))}")
    settings: dict[str, str] = {}
    secret_env: dict[str, str] = {}
    roles: dict[str, dict[str, str]] = {}
    for key, value in table.items():
        if key == "type":
            continue
        if key == "roles" and kind in ROLE_SETTINGS:
            roles = _parse_roles(where, str(kind), value)
            continue
        if key.endswith("_env") and key.removesuffix("_env") in CREDENTIALS[kind]:
            if not isinstance(value, str) or not value:
                raise ConnectorConfigError(f"{where}: {key} must name an environment variable")
            secret_env[key.removesuffix("_env")] = value
        elif key in CREDENTIALS[kind]:
            raise ConnectorConfigError(
                f"{where}: {key} must not be written in keyguard.toml",
                hint=f"use {key}_env = \"VAR\" or `keyguard connector add {name} --secret-stdin {key}`",
            )
        elif key in SETTINGS[kind]:
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise ConnectorConfigError(f"{where}: {key} must be a string or a number")
            settings[key] = str(value)
        else:
            allowed = sorted(SETTINGS[kind] | {f"{c}_env" for c in CREDENTIALS[kind]})
            raise ConnectorConfigError(f"{where}: unknown setting {key!r}", hint="allowed: " + ", ".join(allowed))
    missing = sorted(REQUIRED[kind] - settings.keys())
    if missing:
        raise ConnectorConfigError(f"{where}: missing {', '.join(missing)}")
    for key in ("dsn", "url", "endpoint_url"):
        if key in settings and _has_password(settings[key]):
            raise ConnectorConfigError(
                f"{where}: {key} holds a password",
                hint="drop it from the URL and use password_env = \"VAR\" (or --secret-stdin password)",
            )
    return ConnectorConfig(name, str(kind), settings, secret_env, roles)


def _parse_roles(where: str, kind: str, value: Any) -> dict[str, dict[str, str]]:
    """``roles.ROLE`` tables: ``template`` (a role or ACL user to copy) or Redis ``rules``, and TTLs."""
    if not isinstance(value, dict):
        raise ConnectorConfigError(f"{where}: roles must be a table of [roles.NAME] tables")
    out: dict[str, dict[str, str]] = {}
    for role, spec in value.items():
        if not isinstance(spec, dict) or not NAME_RE.match(str(role)):
            raise ConnectorConfigError(f"{where}: role {role!r} must be a table with a name like readonly")
        unknown = sorted(set(spec) - ROLE_SETTINGS[kind])
        if unknown:
            raise ConnectorConfigError(f"{where}: role {role!r}: unknown setting {unknown[0]!r}",
                                       hint="allowed: " + ", ".join(sorted(ROLE_SETTINGS[kind])))
        if not any(isinstance(spec.get(k), str) and spec.get(k) for k in ("template", "rules")):
            raise ConnectorConfigError(f"{where}: role {role!r} needs a template"
                                       + (" or rules" if kind == "redis" else ""))
        for ttl in ("default_ttl", "max_ttl"):
            if ttl in spec:
                try:
                    parse_span(str(spec[ttl]), ttl)
                except UsageError as exc:
                    raise ConnectorConfigError(f"{where}: role {role!r}: {exc.message}", hint=exc.hint) from None
        out[str(role)] = {k: str(v) for k, v in spec.items()}
    return out


def _has_password(url: str) -> bool:
    if "://" in url:
        try:
            return urlsplit(url).password is not None
        except ValueError:
            return True
    return any(part.strip().startswith("password=") for part in url.split())


def parse_connectors(document: Mapping[str, Any]) -> dict[str, ConnectorConfig]:
    """All ``[connectors.*]`` tables of a parsed keyguard.toml, by name."""
    tables = document.get("connectors", {})
    if not isinstance(tables, dict):
        raise ConnectorConfigError("[connectors] must be a table of [connectors.NAME] tables")
    out: dict[str, ConnectorConfig] = {}
    for name, table in sorted(tables.items()):
        if not isinstance(table, dict):
            raise ConnectorConfigError(f"[connectors.{name}] must be a table")
        out[name] = parse_connector(name, table)
    return out


def load_connectors(path: Path) -> dict[str, ConnectorConfig]:
    """The connectors of a keyguard.toml file (none when the file does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConnectorConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConnectorConfigError(f"{path}: invalid TOML: {exc}") from None
    return parse_connectors(document)
