"""Delivery: the old credential replaced by the new one where consumers read it.

Two kinds of target: files (rewritten in place, atomically) and keyguard secrets
(``secret:NAME``, a new version written through :class:`~keyguard.vault.secrets.SecretStore`,
audited like any write), so a consumer started with ``keyguard run --secret ENV=NAME``
picks the new credential up on its next restart without a file rewrite.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from keyguard.connectors.base import Outcome, Rotation, Step
from keyguard.connectors.checkpoint import write_atomic
from keyguard.connectors.errors import UnknownReferenceError
from keyguard.connectors.secret import Secret
from keyguard.errors import NotFoundError, UsageError
from keyguard.vault.principal import Principal
from keyguard.vault.secrets import SecretStore, check_secret_name

SECRET_TARGET = "secret:"  # noqa: S105 - a prefix, not a secret


def replace_in_files(targets: Sequence[Path], old: str, new: Secret) -> list[str]:
    """Replace every occurrence of ``old`` by the new value in ``targets``, keeping each file's mode.

    Returns the paths changed; a target that does not hold ``old`` is left alone. Every
    file is rewritten atomically, so a consumer never reads half a file.
    """
    changed: list[str] = []
    for path in targets:
        try:
            text = path.read_text(encoding="utf-8")
            mode = os.stat(path).st_mode & 0o777
        except FileNotFoundError:
            raise UnknownReferenceError(f"delivery target {path} does not exist") from None
        if old and old in text:
            write_atomic(path, text.replace(old, new.reveal()).encode(), mode)
            changed.append(str(path))
    return changed


def is_secret_target(target: str) -> bool:
    """True for a ``secret:NAME`` delivery target (a keyguard secret, not a file)."""
    return target.startswith(SECRET_TARGET)


def secret_target_name(target: str) -> str:
    """NAME of a ``secret:NAME`` target (UsageError for an invalid name)."""
    name = target[len(SECRET_TARGET):] if is_secret_target(target) else target
    check_secret_name(name)
    return name


def secret_value(rotation: Rotation, old: Secret | None, current: str | None) -> str | None:
    """The next value of a secret holding ``current`` (None: it has the new credential already).

    Like a file: the old id (when the rotation made a new one, an access key) and the old
    value are replaced by the new ones. A secret that does not exist yet, or holds neither,
    gets the new credential's secret part (password, secret access key) as its whole value.
    """
    if rotation.new_secret is None:
        raise UsageError(f"{rotation.ref} has no credential value to deliver to a secret",
                         hint="its consumers reach the new version by name")
    new = rotation.new_secret.reveal()
    if current is None:
        return new
    new_id = rotation.new_ref.id if rotation.new_ref.id != rotation.ref.id else None
    if new in current or (new_id is not None and new_id in current and rotation.ref.id not in current):
        return None  # delivered before (a rerun after a crash writes no second version)
    updated = current
    if new_id is not None:
        updated = updated.replace(rotation.ref.id, new_id)
    if old is not None and old.reveal():
        updated = updated.replace(old.reveal(), new)
    return updated if updated != current else new


def deliver_to_secrets(store: SecretStore, principal: Principal, names: Sequence[str], rotation: Rotation,
                       old: Secret | None = None) -> Outcome:
    """Write the new credential as a new version of each secret in ``names`` (as ``principal``, audited).

    The value is never returned or shown: the outcome names secrets and versions only.
    """
    actions: list[str] = []
    written: list[str] = []
    for name in names:
        check_secret_name(name)
        purpose = f"delivery of {rotation.new_ref}"
        try:
            current: str | None = store.get(principal, name, purpose=purpose).text()
        except NotFoundError:
            current = None
        value = secret_value(rotation, old, current)
        if value is None:
            actions.append(f"secret:{name} holds the new credential already")
            continue
        version = store.put(principal, name, value.encode("utf-8"), origin="rollout" if current is not None else "put")
        actions.append(f"wrote secret:{name} version {version}")
        written.append(f"secret:{name}@{version}")
    return Outcome(rotation.ref, Step.DELIVER, store.vault.clock.now(), tuple(actions), {"secrets": written})
