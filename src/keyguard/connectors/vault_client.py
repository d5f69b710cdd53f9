"""HTTP client for one ``vault`` connector (HashiCorp Vault or OpenBao), and its ``connector check``."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from keyguard.connectors.base import CheckReport, PermissionCheck
from keyguard.connectors.config import ConnectorConfig, SecretSource
from keyguard.connectors.errors import (
    ConnectorConfigError,
    MissingPermissionError,
    UnknownReferenceError,
    UnreachableError,
)
from keyguard.connectors.secret import Secret, scrub
from keyguard.errors import KeyguardError, RefusedError


class VaultReply:
    """A response whose status the caller wants to judge itself (probes with a leaked token)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body

    @property
    def errors(self) -> list[str]:
        """Vault's ``errors`` list."""
        return [str(e) for e in self.body.get("errors", [])]


class VaultClient:
    """``url``, ``token_env``, ``kv_mount``, ``transit_mount``, ``audit_log``, ``audit_path``."""

    def __init__(self, config: ConnectorConfig, *, environ: Mapping[str, str] | None = None,
                 source: SecretSource | None = None) -> None:
        self.name = config.name
        self.url = str(config.get("url")).rstrip("/")
        self.kv_mount = str(config.get("kv_mount")).strip("/")
        self.transit_mount = str(config.get("transit_mount")).strip("/")
        self.audit_log = config.get("audit_log")
        self.audit_path = str(config.get("audit_path")).strip("/")
        token = config.credential("token", environ=environ, source=source)
        if token is None:
            raise ConnectorConfigError(f"connector {self.name!r} has no token", hint="set token_env = \"BAO_TOKEN\"")
        self._token = token
        headers = {"X-Vault-Namespace": ns} if (ns := config.get("namespace")) else {}
        self._http = httpx.Client(base_url=self.url, timeout=config.timeout(), headers=headers)

    def _send(self, method: str, path: str, body: Any, token: Secret) -> httpx.Response:
        try:
            return self._http.request(method, f"/v1/{path.lstrip('/')}", json=body,
                                      headers={"X-Vault-Token": token.reveal()})
        except httpx.HTTPError as exc:
            raise UnreachableError(self.name, self.url, type(exc).__name__) from None

    def probe(self, method: str, path: str, body: Any = None, *, token: Secret | None = None) -> VaultReply:
        """A call whose status is returned, not raised; with ``token`` (the leaked one) instead of the connector's."""
        reply = self._send(method, path, body, token or self._token)
        return VaultReply(reply.status_code, _json(reply))

    def request(self, method: str, path: str, body: Any = None, *, ref: str | None = None) -> dict[str, Any]:
        """A call with the connector's token; a refusal is one keyguard error naming the path."""
        reply = self._send(method, path, body, self._token)
        if reply.status_code < 300:
            return _json(reply)
        errors = " ".join(str(e) for e in _json(reply).get("errors", []))
        errors = scrub(errors, (self._token,))[:200]
        if reply.status_code == 403:
            if "bad token" in errors or "invalid token" in errors:
                raise RefusedError(f"connector {self.name!r}: Vault refused the connector's own token",
                                   hint="check token_env")
            raise MissingPermissionError(self.name, f"{_capability(method)} on {path}")
        if reply.status_code == 404:
            raise UnknownReferenceError(f"{ref or path}: not found on connector {self.name!r}")
        raise KeyguardError(f"connector {self.name!r}: {method} {path} failed ({reply.status_code}: {errors})")

    def audit_hash(self, value: str) -> str:
        """The audit device's HMAC of ``value`` (``sys/audit-hash``), to match its log."""
        return str(self.request("POST", f"sys/audit-hash/{self.audit_path}", {"input": value})["hash"])

    def audit_entries(self, since: datetime) -> Iterator[dict[str, Any]]:
        """The file audit device's entries since ``since`` (``audit_log``); nothing when not configured."""
        if not self.audit_log:
            return
        try:
            handle = open(self.audit_log, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
        except OSError:
            raise MissingPermissionError(self.name, f"read audit_log {self.audit_log}") from None
        with handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                at = entry_time(entry)
                if isinstance(entry, dict) and (at is None or at >= since):
                    yield entry

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()


def entry_time(entry: Any) -> datetime | None:
    """An audit entry's ``time`` (nanosecond RFC 3339) as aware UTC."""
    text = str(entry.get("time", "")) if isinstance(entry, dict) else ""
    if not text:
        return None
    head, _, frac = text.rstrip("Z").partition(".")
    try:
        return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").astimezone(UTC)
    except ValueError:
        return None


def _json(reply: httpx.Response) -> dict[str, Any]:
    try:
        body = reply.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _capability(method: str) -> str:
    return {"GET": "read", "LIST": "list", "DELETE": "delete"}.get(method, "update")


def needed_paths(vault: VaultClient) -> dict[str, str]:
    """Path → capability the playbook needs (one concrete path per family)."""
    kv, tr = vault.kv_mount, vault.transit_mount
    return {
        "auth/token/lookup": "update", "auth/token/lookup-accessor": "update",
        "auth/token/revoke-accessor": "update", "auth/token/accessors": "list",
        f"sys/audit-hash/{vault.audit_path}": "update",
        f"{kv}/metadata/keyguard-check": "list", f"{kv}/data/keyguard-check": "update",
        f"{kv}/destroy/keyguard-check": "update", f"{tr}/keys/keyguard-check/rotate": "update",
        f"{tr}/keys/keyguard-check/config": "update", f"{tr}/rewrap/keyguard-check": "update",
        f"{tr}/keys/keyguard-check/trim": "update",
    }


def check_vault(vault: VaultClient) -> CheckReport:
    """Reachable (``sys/health``, ``lookup-self``), and each path's capability (``sys/capabilities-self``)."""
    try:
        me = vault.request("GET", "auth/token/lookup-self").get("data", {})
        paths = needed_paths(vault)
        caps = vault.request("POST", "sys/capabilities-self", {"paths": list(paths)})
    except MissingPermissionError as exc:
        return CheckReport(vault.name, "vault", True, "", (PermissionCheck(exc.permission, False),))
    except RefusedError as exc:
        return CheckReport(vault.name, "vault", True, "", problem=exc.message)
    except KeyguardError as exc:
        return CheckReport(vault.name, "vault", False, "", problem=exc.message)
    checks = []
    for path, need in paths.items():
        have = [str(c) for c in caps.get(path, caps.get("data", {}).get(path, []))]
        ok = "root" in have or need in have or (need == "update" and "create" in have and "kv" in path)
        checks.append(PermissionCheck(f"{need} on {path}", ok, ",".join(have) or "deny"))
    identity = f"{me.get('display_name', '?')} (policies {','.join(me.get('policies', []))})"
    return CheckReport(vault.name, "vault", True, identity, tuple(checks))
