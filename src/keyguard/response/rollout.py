"""Replace, step 3 continued: prove every consumer switched to the new version.

A consumer (client) that holds a grant on the key, or used it, is

* ``switched``: it used the new version since the rotation;
* ``straggler``: it still called an old version since the rotation;
* ``quiet``: it has not called the key since the rotation.

Consumers may declare the files where they read the key reference
(``client create --reference FILE``): ``.env``, YAML, JSON, TOML or CI variable
files. ``update_references`` rewrites ``NAME@N``, ``kg://NAME/N`` and
``NAME:vN`` to the new version, keeps a backup, writes atomically (a private
temporary file beside it, fsync, rename), keeps the file's mode and owner,
checks the file still parses, and returns the diff.

Only files under the configured roots are touched (``$KEYGUARD_HOME/keyguard.toml``,
``[rollout] roots = ["/etc/app", …]``; none by default): a reference must be an
absolute path without ``..``, and symbolic links are refused unless
``[rollout] allow_symlinks = true`` (then the file a link points at must be under
a root too, and it is written with the link kept).

A consumer that reads its configuration from a keyguard secret at start-up
declares ``secret:NAME`` instead of a file (``client create --reference
secret:billing-config``): ``update_target`` then writes a new version of that
secret with the references rewritten, so the consumer picks the new key version
up on its next restart (``keyguard run``) without a file rewrite. Its "diff"
names the versions only, never the secret's text.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select

from keyguard.audit.log import format_ts
from keyguard.errors import RefusedError, UsageError
from keyguard.store.files import write_atomic
from keyguard.store.tables import AuditEvent, Client, Grant
from keyguard.vault.principal import Principal
from keyguard.vault.secrets import SecretStore, check_secret_name
from keyguard.vault.service import Vault

SECRET_REFERENCE = "secret:"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class ConsumerStatus:
    """Where one consumer stands after a rotation."""

    client: str
    status: str
    last_new: str | None
    last_old: str | None
    old_calls: int
    references: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON view."""
        return {
            "client": self.client,
            "status": self.status,
            "last_new": self.last_new,
            "last_old": self.last_old,
            "old_calls": self.old_calls,
            "references": self.references,
        }


def consumers(vault: Vault, key: str) -> list[ConsumerStatus]:
    """Every consumer of ``key`` and whether it switched to the active version."""
    info = vault.key_info(key)
    active = info.active
    new_version = active.version if active else info.latest
    since = format_ts(info.versions[new_version].created_at)
    with vault.engine.connect() as conn:
        rows = conn.execute(select(Client.id, Client.name, Client.references, Client.status)).all()
        grants = conn.execute(select(Grant.client_id, Grant.key_pattern)).all()
        users = set(conn.execute(select(AuditEvent.actor).distinct().where(AuditEvent.key == key)).scalars())
        per_version = conn.execute(
            select(
                AuditEvent.actor,
                AuditEvent.version,
                AuditEvent.result,
                func.max(AuditEvent.ts).label("last"),
                func.count().label("n"),
            )
            .where(AuditEvent.key == key, AuditEvent.ts >= since)
            .group_by(AuditEvent.actor, AuditEvent.version, AuditEvent.result)
        ).all()
    usage: dict[tuple[str, bool], tuple[str, int]] = {}
    old_attempts: dict[str, tuple[str, int]] = {}
    for r in per_version:
        if r.version is None:
            continue
        if r.version >= new_version and r.result == "ok":
            last, n = usage.get((r.actor, True), ("", 0))
            usage[(r.actor, True)] = (max(last, r.last), n + int(r.n))
        elif r.version < new_version:
            last, n = old_attempts.get(r.actor, ("", 0))
            old_attempts[r.actor] = (max(last, r.last), n + int(r.n))
    granted = {g.client_id for g in grants if fnmatch.fnmatchcase(key, g.key_pattern)}
    result: list[ConsumerStatus] = []
    for row in rows:
        if row.id not in granted and row.name not in users:
            continue
        new = usage.get((row.name, True))
        old = old_attempts.get(row.name)
        status = "switched" if new and not old else "straggler" if old else "quiet"
        if new and old and old[0] < new[0]:
            status = "switched"  # it called the old version once, then moved on
        result.append(
            ConsumerStatus(
                row.name,
                status,
                new[0] if new else None,
                old[0] if old else None,
                old[1] if old else 0,
                list(row.references or []),
            )
        )
    return sorted(result, key=lambda c: c.client)


def percent_done(statuses: list[ConsumerStatus]) -> float:
    """Share of consumers that switched (100 when there are none)."""
    if not statuses:
        return 100.0
    return round(100.0 * sum(s.status == "switched" for s in statuses) / len(statuses), 1)


def _patterns(key: str) -> list[re.Pattern[str]]:
    k = re.escape(key)
    return [
        re.compile(rf"(?<![a-z0-9._-])({k}@)(\d+)\b"),
        re.compile(rf"(kg://{k}/)(\d+)\b"),
        re.compile(rf"(?<![a-z0-9._-])({k}:v)(\d+)\b"),
    ]


def _check_parses(path: Path, text: str) -> None:
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            json.loads(text)
        elif suffix in (".yaml", ".yml"):
            yaml.safe_load(text)
        elif suffix == ".toml":
            tomllib.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise UsageError(f"{path} would no longer parse after the update", hint=type(exc).__name__) from None


def rewrite(text: str, key: str, new_version: int) -> str:
    """``text`` with every older reference to ``key`` pointing at ``new_version``."""
    for pattern in _patterns(key):
        text = pattern.sub(
            lambda m: m.group(1) + (str(new_version) if int(m.group(2)) < new_version else m.group(2)),
            text,
        )
    return text


@dataclass(frozen=True)
class RolloutPolicy:
    """Where ``rollout --update`` may write: ``[rollout]`` of keyguard.toml."""

    roots: tuple[Path, ...] = ()
    allow_symlinks: bool = False
    config_file: Path | None = None

    @classmethod
    def load(cls, config_file: Path) -> RolloutPolicy:
        """The ``[rollout]`` table of ``config_file`` (no roots when the file or the table is absent)."""
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8")) if config_file.exists() else {}
        except (OSError, tomllib.TOMLDecodeError):
            raise UsageError(f"cannot read {config_file}", hint="check the TOML syntax") from None
        table = data.get("rollout", {})
        roots = table.get("roots", []) if isinstance(table, dict) else []
        allow = table.get("allow_symlinks", False) if isinstance(table, dict) else False
        if not isinstance(roots, list) or not all(isinstance(r, str) and os.path.isabs(r) for r in roots):
            raise UsageError(f"[rollout] roots in {config_file} must be a list of absolute paths")
        if not isinstance(allow, bool):
            raise UsageError(f"[rollout] allow_symlinks in {config_file} must be true or false")
        return cls(tuple(Path(os.path.normpath(r)) for r in roots), allow, config_file)

    def check(self, path: Path) -> Path:
        """The file to write for reference ``path``, or a one-line refusal (exit 2 or 3)."""
        where = self.config_file or "keyguard.toml"
        if not path.is_absolute() or ".." in path.parts:
            raise UsageError(
                f"rollout target {path} is not an absolute path without '..'",
                hint="declare references as absolute paths (client create --reference /etc/app/.env)",
            )
        root = next((r for r in self.roots if path.is_relative_to(r)), None)
        if root is None:
            hint = f'add its directory to [rollout] roots in {where}, e.g. roots = ["{path.parent}"]'
            raise RefusedError(f"rollout target {path} is outside the configured roots", hint=hint)
        real_root = root.resolve()
        try:
            real_parent = path.parent.resolve(strict=True)
        except OSError:
            raise UsageError(f"cannot read {path}: no such directory") from None
        linked = real_parent != real_root / path.parent.relative_to(root) or path.is_symlink()
        if linked and not self.allow_symlinks:
            raise RefusedError(
                f"rollout target {path} goes through a symbolic link",
                hint=f"name the real file, or set [rollout] allow_symlinks = true in {where}",
            )
        target = path.resolve() if path.is_symlink() else real_parent / path.name
        if not any(target.is_relative_to(r.resolve()) for r in self.roots):
            raise RefusedError(f"rollout target {path} leads to {target}, outside the configured roots")
        return target


def update_references(
    path: Path,
    key: str,
    new_version: int,
    now: datetime,
    dry_run: bool = False,
    *,
    policy: RolloutPolicy | None = None,
) -> str:
    """Rewrite references in ``path`` atomically with a backup; returns the unified diff ('' if none).

    ``path`` must be allowed by ``policy`` (no roots, nothing allowed, by default).
    """
    target = (policy or RolloutPolicy()).check(path)
    try:
        original = target.read_text(encoding="utf-8")
        info = target.stat()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    updated = rewrite(original, key, new_version)
    if updated == original:
        return ""
    _check_parses(target, updated)
    diff = "".join(
        difflib.unified_diff(original.splitlines(True), updated.splitlines(True), f"a/{path.name}", f"b/{path.name}")
    )
    if dry_run:
        return diff
    mode = info.st_mode & 0o7777
    owner = (info.st_uid, info.st_gid)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    backup = target.with_name(f"{target.name}.kg-bak-{stamp}")
    # Both are new files renamed into place; a link planted at either name is refused.
    write_atomic(backup, original.encode("utf-8"), mode=mode, owner=owner)
    write_atomic(target, updated.encode("utf-8"), mode=mode, owner=owner)
    return diff


def is_secret_reference(reference: str) -> bool:
    """True for a ``secret:NAME`` consumer reference (a keyguard secret, not a file)."""
    return reference.startswith(SECRET_REFERENCE)


def update_secret_reference(
    vault: Vault, principal: Principal, reference: str, key: str, new_version: int, dry_run: bool = False
) -> str:
    """Write a new version of secret ``NAME`` (``secret:NAME``) with ``key``'s references rewritten.

    Returns a one-line summary ('' when the secret holds no older reference);
    the value itself is never shown. Reading and writing are audited like any
    secret access, as ``principal``.
    """
    name = reference[len(SECRET_REFERENCE) :]
    check_secret_name(name)
    store = SecretStore(vault)
    current = store.get(principal, name, purpose=f"rollout of {key}")
    original = current.text()
    updated = rewrite(original, key, new_version)
    if updated == original:
        return ""
    if dry_run:
        return f"{reference}: version {current.version} would be replaced ({key} -> version {new_version})\n"
    version = store.put(principal, name, updated.encode("utf-8"), origin="rollout")
    return f"{reference}: version {current.version} -> {version} ({key} -> version {new_version})\n"


def update_target(
    vault: Vault,
    principal: Principal,
    reference: str,
    key: str,
    new_version: int,
    now: datetime,
    dry_run: bool = False,
    *,
    policy: RolloutPolicy | None = None,
) -> str:
    """Update one declared consumer reference: a ``secret:NAME`` or a file (see :func:`update_references`)."""
    if is_secret_reference(reference):
        return update_secret_reference(vault, principal, reference, key, new_version, dry_run)
    return update_references(Path(reference), key, new_version, now, dry_run, policy=policy)
