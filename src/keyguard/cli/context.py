"""What every CLI command needs: settings, the vault, the incidents, the calling principal."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from keyguard.clock import Clock, SystemClock
from keyguard.config import Settings
from keyguard.errors import UsageError
from keyguard.runtime import open_engine, open_vault
from keyguard.store.files import write_atomic
from keyguard.vault.principal import Principal, local_admin
from keyguard.vault.service import Vault

if TYPE_CHECKING:
    from keyguard.incident.service import IncidentService


def vault() -> Vault:
    """The vault of ``$KEYGUARD_HOME`` / ``KEYGUARD_DATABASE_URL``."""
    return open_vault(Settings.from_env())


def incident_service(settings: Settings | None = None, clock: Clock | None = None) -> IncidentService:
    """The incident service of ``$KEYGUARD_HOME`` / ``KEYGUARD_DATABASE_URL``."""
    # imported here: ``respond`` blocks the leaked versions before this machinery loads
    from keyguard.incident.service import IncidentService

    return IncidentService(open_engine(settings), clock or SystemClock())


_accepted_codes: set[tuple[str, str]] = set()


def principal(v: Vault) -> Principal:
    """The caller: a client when ``KEYGUARD_TOKEN`` is set, else the local administrator.

    ``KEYGUARD_OTP`` is a one-time code: it is presented to the vault once per
    process; a command that asks for the caller again re-checks the token only.
    """
    token = os.environ.get("KEYGUARD_TOKEN")
    if not token:
        return local_admin()
    from keyguard.vault.clients import ClientService
    from keyguard.vault.model import hash_token

    clients = ClientService(v)
    otp = os.environ.get("KEYGUARD_OTP") or None
    if otp is None:
        return clients.authenticate(token, source_ip="127.0.0.1", user_agent="keyguard-cli")
    presented = (hash_token(token), hash_token(otp))
    if presented in _accepted_codes:
        again = clients.authenticate(token, source_ip="127.0.0.1", user_agent="keyguard-cli")
        return replace(again, mfa=True)
    caller = clients.authenticate(token, source_ip="127.0.0.1", user_agent="keyguard-cli", otp=otp)
    _accepted_codes.add(presented)
    return caller


def authorize(op: str) -> Principal:
    """The caller, allowed ``op`` the way the API allows it (``KEYGUARD_TOKEN``); refusals are audited.

    Without a token the caller is the local administrator, who may do everything.
    """
    if not os.environ.get("KEYGUARD_TOKEN"):
        return local_admin()
    v = vault()
    caller = principal(v)
    if not caller.may(op):
        v.record(caller, op, "denied", None, None, f"{caller.name} may not {op}")
        caller.require(op)
    return caller


def read_input(path: Path | None) -> bytes:
    """Bytes from ``--in FILE`` or stdin."""
    if path is not None:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    return sys.stdin.buffer.read()


def write_output(data: bytes, path: Path | None, mode: int = 0o600) -> None:
    """Bytes to ``--out FILE`` (a private temporary file renamed over it; no symlinks) or stdout."""
    if path is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    write_atomic(path, data, mode=mode)
