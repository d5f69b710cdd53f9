"""Resource references (SPEC §7): ``CONNECTOR/KIND/ID``, where ID is the rest and may hold slashes.

``aws-prod/access-key/AKIA…``, ``aws-prod/kms-key/alias/payments``, ``bao/kv/app/db``,
``pg/role/billing``, ``redis/user/cache`` and ``external/RULE/FINGERPRINT`` for credentials
no connector reaches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keyguard.connectors.errors import BadReferenceError

EXTERNAL = "external"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

#: The kinds of resource each connector type reaches.
KINDS: dict[str, tuple[str, ...]] = {
    "aws": ("access-key", "kms-key", "secret"),
    "vault": ("token", "kv", "transit"),
    "postgresql": ("role",),
    "redis": ("user",),
}


@dataclass(frozen=True, slots=True)
class Ref:
    """A parsed resource reference."""

    connector: str
    kind: str
    id: str

    def __str__(self) -> str:
        return f"{self.connector}/{self.kind}/{self.id}"

    @property
    def is_external(self) -> bool:
        """True for ``external/RULE/FINGERPRINT``."""
        return self.connector == EXTERNAL


def parse_ref(text: str) -> Ref:
    """Parse ``CONNECTOR/KIND/ID``; raises BadReferenceError with the expected shape."""
    value = text.strip()
    parts = value.split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise BadReferenceError(
            f"invalid resource reference {value!r}",
            hint="use CONNECTOR/KIND/ID, for example aws-prod/access-key/AKIA… or pg/role/billing",
        )
    connector, kind, ident = parts
    if not NAME_RE.match(connector):
        raise BadReferenceError(f"invalid connector name {connector!r} in reference", hint="[a-z0-9][a-z0-9._-]*")
    if not re.match(r"^[a-z0-9][a-z0-9-]*$", kind):
        raise BadReferenceError(f"invalid kind {kind!r} in reference", hint="a kind like access-key, transit, role")
    if any(ch.isspace() or ord(ch) < 32 for ch in ident):
        raise BadReferenceError("resource id holds whitespace or control characters")
    return Ref(connector, kind, ident)


def check_kind(ref: Ref, connector_type: str) -> None:
    """Raise BadReferenceError when ``ref.kind`` is not a kind of ``connector_type``."""
    kinds = KINDS.get(connector_type, ())
    if ref.kind not in kinds:
        raise BadReferenceError(
            f"connector {ref.connector!r} ({connector_type}) has no kind {ref.kind!r}",
            hint="kinds: " + ", ".join(kinds),
        )
