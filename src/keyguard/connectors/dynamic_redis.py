"""Dynamic Redis users: ``ACL SETUSER`` with a template's rules, ``ACL DELUSER`` at lease end.

The template is either literal ACL ``rules`` or an existing ACL user (usually ``off``) whose
rules are copied from ``ACL LIST``, without its passwords or on/off flag. The password is
given to Redis as its SHA-256 (``#hash``), so the plain value is never in a command.
"""

from __future__ import annotations

import re
import shlex
from datetime import datetime

from keyguard.connectors.errors import UnknownReferenceError
from keyguard.connectors.redis_user import RedisAdmin, sha256_hex
from keyguard.connectors.secret import Secret
from keyguard.errors import UsageError

_TOKEN = re.compile(r"\([^)]*\)|\S+")
#: Parts of an ACL LIST line that are the template user's own credentials or state, not rules.
_NOT_RULES = ("on", "off", "nopass", "resetpass", "reset")


def rules_of_acl_line(line: str) -> list[str]:
    """The rules of one ``ACL LIST`` line (``user NAME …``) without passwords and on/off."""
    tokens = _TOKEN.findall(line)
    if len(tokens) < 2 or tokens[0] != "user":
        raise UsageError(f"unexpected ACL LIST line {line[:40]!r}")
    return [t for t in tokens[2:] if t not in _NOT_RULES and t[:1] not in ("#", ">", "<", "!")]


class RedisDynamic:
    """Create and delete the ACL users of one ``[connectors.NAME.roles.ROLE]``."""

    backend = "redis"

    def __init__(self, rd: RedisAdmin, template: str | None, rules: str | None) -> None:
        self.rd = rd
        self.template = template
        self.rules_text = rules

    def rules(self) -> list[str]:
        """The ACL rules every user of the role gets."""
        if self.rules_text:
            return shlex.split(self.rules_text)
        for raw in self.rd.run("ACL LIST", "ACL", "LIST"):
            line = raw.decode() if isinstance(raw, bytes) else str(raw)
            if line.split(" ", 2)[1:2] == [self.template]:
                return rules_of_acl_line(line)
        raise UnknownReferenceError(f"connector {self.rd.name!r}: template ACL user {self.template!r} does not exist",
                                    hint="create it (off) with the rules the credentials should have")

    def create(self, username: str, password: Secret, valid_until: datetime) -> None:
        """``ACL SETUSER name reset on #sha256 <rules>`` (Redis has no expiry: keyguard deletes it)."""
        del valid_until
        rules = self.rules()
        self.rd.run("ACL SETUSER", "ACL", "SETUSER", username, "reset", "on", "#" + sha256_hex(password.reveal()),
                    *rules)

    def extend(self, username: str, valid_until: datetime) -> None:
        """Nothing to change in Redis: the lease row holds the expiry."""
        del username, valid_until

    def exists(self, username: str) -> bool:
        """True when the ACL user exists."""
        return self.rd.run("ACL GETUSER", "ACL", "GETUSER", username) is not None

    def drop(self, username: str) -> int:
        """``ACL DELUSER`` (Redis disconnects the user's clients); idempotent. Returns 1 when it existed."""
        return int(self.rd.run("ACL DELUSER", "ACL", "DELUSER", username))

    def close(self) -> None:
        """Close the admin connection."""
        self.rd.close()
