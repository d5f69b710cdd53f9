"""Key-version states and the transitions allowed between them (SPEC §3)."""

from __future__ import annotations

from enum import StrEnum

from keyguard.errors import ConflictError


class VersionState(StrEnum):
    """The five states of a key version."""

    ACTIVE = "active"  # new operations use it; at most one per key
    ENABLED = "enabled"  # decrypt / verify only
    DISABLED = "disabled"  # blocked, reversible
    COMPROMISED = "compromised"  # blocked forever; every attempt is audited and alerts
    DESTROYED = "destroyed"  # material erased; metadata and audit kept


S = VersionState
ALLOWED: dict[VersionState, frozenset[VersionState]] = {
    S.ACTIVE: frozenset({S.ENABLED, S.DISABLED, S.COMPROMISED}),
    S.ENABLED: frozenset({S.ACTIVE, S.DISABLED, S.COMPROMISED}),
    S.DISABLED: frozenset({S.ENABLED, S.ACTIVE, S.COMPROMISED, S.DESTROYED}),
    S.COMPROMISED: frozenset({S.DESTROYED}),
    S.DESTROYED: frozenset(),
}
BLOCKED = frozenset({S.DISABLED, S.COMPROMISED, S.DESTROYED})
# Operations that need the active version versus any usable one.
PRODUCING_OPS = frozenset({"encrypt", "sign", "data-key"})


def check_transition(key: str, version: int, current: str, target: str) -> None:
    """Raise :class:`ConflictError` unless ``current → target`` is allowed."""
    src, dst = VersionState(current), VersionState(target)
    if dst not in ALLOWED[src]:
        hint = {
            S.COMPROMISED: "a compromised version can only be destroyed",
            S.DESTROYED: "a destroyed version stays destroyed",
        }.get(src, f"allowed from {src}: " + (", ".join(sorted(ALLOWED[src])) or "none"))
        if dst is S.DESTROYED and src in (S.ACTIVE, S.ENABLED):
            hint = "disable it (or mark it compromised) before destroying it"
        raise ConflictError(f"{key} version {version} cannot go from {src} to {dst}", hint=hint)


def usable_for(state: str, op: str) -> bool:
    """True when a version in ``state`` may serve ``op``."""
    s = VersionState(state)
    if s in BLOCKED:
        return False
    if op in PRODUCING_OPS:
        return s is S.ACTIVE
    return True
