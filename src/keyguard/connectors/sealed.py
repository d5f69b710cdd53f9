"""Connector credentials (and values a response must keep) sealed by keyguard's root of trust.

``$KEYGUARD_HOME/connectors.sealed`` is one JSON document, mode 0600, written atomically:
``{"NAME": {"FIELD": {"gen": G, "sealed": B64}}}``. Each value is sealed by the vault's
barrier (itself wrapped by the root of trust) with ``connector:NAME:FIELD`` as associated
data, so a value moved to another name or field does not open. The file never holds a
plaintext value; a value that does not open (tampered, or sealed before a root rotation
retired its barrier generation) is refused with one line telling how to store it again.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Protocol

from keyguard.connectors.errors import ConnectorConfigError
from keyguard.connectors.secret import Secret
from keyguard.errors import IntegrityError
from keyguard.store.files import write_atomic

FILE_NAME = "connectors.sealed"


class Sealer(Protocol):
    """What the vault's barrier offers: seal under the newest generation, open any live one."""

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[int, bytes]: ...

    def unseal(self, generation: int, sealed: bytes, aad: bytes) -> bytes: ...


def _aad(connector: str, field: str) -> bytes:
    return f"connector:{connector}:{field}".encode()


class SealedStore:
    """A :class:`~keyguard.connectors.config.SecretSource` over the sealed file."""

    def __init__(self, path: Path, sealer: Sealer) -> None:
        self.path = path
        self.sealer = sealer

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            raise ConnectorConfigError(f"{self.path} is unreadable",
                                       hint="restore it or store the values again") from None
        if not isinstance(document, dict):
            raise ConnectorConfigError(f"{self.path} is not a sealed-values document")
        return document

    def names(self) -> dict[str, list[str]]:
        """Connector → the fields stored for it (no values)."""
        return {name: sorted(fields) for name, fields in sorted(self._read().items()) if isinstance(fields, dict)}

    def put(self, connector: str, field: str, value: Secret) -> None:
        """Seal ``value`` as ``connector``'s ``field`` (replacing an earlier one)."""
        document = self._read()
        gen, sealed = self.sealer.seal(value.reveal().encode(), _aad(connector, field))
        document.setdefault(connector, {})[field] = {"gen": gen, "sealed": base64.b64encode(sealed).decode()}
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.path, json.dumps(document, sort_keys=True, indent=1).encode(), mode=0o600)

    def delete(self, connector: str, field: str) -> bool:
        """Forget one value; True when there was one."""
        document = self._read()
        fields = document.get(connector)
        if not isinstance(fields, dict) or field not in fields:
            return False
        del fields[field]
        if not fields:
            del document[connector]
        write_atomic(self.path, json.dumps(document, sort_keys=True, indent=1).encode(), mode=0o600)
        return True

    def lookup(self, connector: str, field: str) -> Secret | None:
        """The value of ``connector``'s ``field``, or None when none is stored."""
        entry = self._read().get(connector, {}).get(field)
        if not isinstance(entry, dict):
            return None
        try:
            sealed = base64.b64decode(str(entry["sealed"]), validate=True)
            plain = self.sealer.unseal(int(entry["gen"]), sealed, _aad(connector, field))
        except (KeyError, ValueError, TypeError, IntegrityError):
            raise IntegrityError(
                f"the sealed {field} of {connector!r} does not open",
                hint=f"store it again: keyguard connector add {connector} --type TYPE --secret-stdin {field}",
            ) from None
        return Secret(plain.decode())
