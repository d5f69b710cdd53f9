"""Who is calling, and what they may do (least privilege)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from keyguard.errors import PermissionDeniedError

ROLES = ("admin", "operator", "auditor", "service")
KEY_OPS = (
    "encrypt",
    "decrypt",
    "sign",
    "verify",
    "data-key",
    "rewrap",
    "export-public",
)
# Administrative operations: where the deployment requires MFA (``KEYGUARD_MFA=required``)
# they need a second factor, like the destructive key operations (``Vault.require_mfa``).
ADMIN_OPS = frozenset(
    {
        "client.create",
        "client.config",  # grants
        "client.mfa",
        "client.token",
        "client.resume",
        "connector.config",
        "policy.config",
    }
)
# Role → operations it may perform on any key (grants add per-key operations).
_ROLE_OPS: dict[str, frozenset[str]] = {
    "admin": frozenset({"*"}),
    "operator": frozenset(
        set(KEY_OPS)
        | {
            "key.create",
            "key.import",
            "key.rotate",
            "key.disable",
            "key.enable",
            "key.compromise",
            "key.read",
            "key.config",
            "data.register",
            "data.rewrap",
            "data.read",
            "client.read",
            "client.suspend",
            "client.resume",
            "audit.read",
            "incident.write",
            "incident.read",
            "alert.write",
            "alert.read",
            "scan",
            # revoking a leaked lease is containment, which operators do (issuing and renewing are not)
            "lease.read",
            "lease.revoke",
        }
    ),
    "auditor": frozenset(
        {
            "key.read",
            "data.read",
            "client.read",
            "audit.read",
            "incident.read",
            "alert.read",
            "export-public",
            "verify",
        }
    ),
    "service": frozenset(),
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    name: str
    role: str
    grants: tuple[tuple[str, str], ...] = ()
    source_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    client_id: int | None = None
    mfa: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def on_request(self, source_ip: str | None, user_agent: str | None, request_id: str | None) -> Principal:
        """This principal with one request's fields: ``dataclasses.replace`` without its per-field walk."""
        clone = object.__new__(type(self))
        fields = clone.__dict__
        fields.update(self.__dict__)
        fields["source_ip"] = source_ip
        fields["user_agent"] = user_agent
        fields["request_id"] = request_id
        return clone

    @property
    def actor(self) -> str:
        """The actor string written to the audit log."""
        return self.name

    def may(self, op: str, key: str | None = None) -> bool:
        """True when the role or a grant allows ``op`` (on ``key``)."""
        allowed = _ROLE_OPS.get(self.role, frozenset())
        if "*" in allowed or op in allowed:
            return True
        if key is None:
            return False
        return any(
            (grant_op == op or grant_op == "*") and fnmatch.fnmatchcase(key, pattern)
            for pattern, grant_op in self.grants
        )

    def require(self, op: str, key: str | None = None) -> None:
        """Raise :class:`PermissionDeniedError` unless allowed."""
        if not self.may(op, key):
            target = f" on key {key!r}" if key else ""
            raise PermissionDeniedError(
                f"{self.name} may not {op}{target}", hint=f"role {self.role} has no grant for it"
            )


def local_admin() -> Principal:
    """The operator at the local terminal (the embedded default's CLI)."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Principal(name=f"cli:{user}@{socket.gethostname()}", role="admin", mfa=True)


# Grant ops on a secret (``secret:NAME:OP[,OP…]``, kept as the pattern ``secret:NAME``).
SECRET_GRANT_OPS = ("read", "write", "destroy")


def parse_grants(text: list[str]) -> list[tuple[str, str]]:
    """Parse ``KEY:OP[,OP…]`` and ``secret:NAME:OP[,OP…]`` grant strings."""
    from keyguard.errors import UsageError

    grants: list[tuple[str, str]] = []
    for item in text:
        if item.startswith("secret:"):
            name, sep, ops = item[len("secret:") :].partition(":")
            if not sep or not name or not ops:
                raise UsageError(f"invalid grant {item!r}", hint="use secret:NAME:OP[,OP...] like secret:db:read")
            for op in ops.split(","):
                op = op.strip()
                if op != "*" and op not in SECRET_GRANT_OPS:
                    raise UsageError(
                        f"unknown secret operation {op!r} in grant", hint="one of " + ", ".join(SECRET_GRANT_OPS)
                    )
                grants.append(("secret:" + name, op))
            continue
        pattern, sep, ops = item.partition(":")
        if not sep or not pattern or not ops:
            raise UsageError(f"invalid grant {item!r}", hint="use KEY:OP[,OP...] like pay:encrypt,decrypt")
        for op in ops.split(","):
            op = op.strip()
            if op != "*" and op not in KEY_OPS:
                raise UsageError(f"unknown operation {op!r} in grant", hint="one of " + ", ".join(KEY_OPS))
            grants.append((pattern, op))
    return grants
