"""The first second of a response: block the leaked versions before anything else.

Kept free of the incident machinery (and its imports) so that ``keyguard
respond`` makes the key unusable on every node as the very first thing it does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keyguard.vault.lifecycle import VersionState
from keyguard.vault.principal import Principal
from keyguard.vault.service import Vault


def target_versions(vault: Vault, name: str, version: int | None) -> list[int]:
    """The versions a ``NAME[@VERSION]`` reference covers (every usable one without a version)."""
    info = vault.key_info(name)
    if version is not None:
        if version not in info.versions:
            from keyguard.errors import NotFoundError

            raise NotFoundError(f"key {name!r} has no version {version}", hint=f"versions 1..{info.latest}")
        return [version]
    return sorted(v for v, i in info.versions.items() if i.state != VersionState.DESTROYED)


def block_versions(
    vault: Vault,
    principal: Principal,
    keys: Sequence[tuple[str, int | None]],
    target: VersionState = VersionState.COMPROMISED,
    reason: str = "containment",
) -> list[dict[str, Any]]:
    """Move every covered version to ``target`` (idempotent); returns what was done."""
    done: list[dict[str, Any]] = []
    for name, version in keys:
        for n in target_versions(vault, name, version):
            state = vault.key_info(name).versions[n].state
            if state in (VersionState.COMPROMISED, VersionState.DESTROYED) or state == target:
                done.append({"key": name, "version": n, "state": state, "changed": False})
                continue
            vault.set_state(principal, name, n, target.value, reason)
            done.append({"key": name, "version": n, "state": target.value, "changed": True})
    return done
