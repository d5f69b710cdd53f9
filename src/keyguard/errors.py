"""The single exception tree of keyguard.

Every error a user can meet is a :class:`KeyguardError`; each class carries the
CLI exit code (SPEC §4) and the HTTP status it maps to, so ``cli`` and ``api``
translate them in exactly one place::

    KeyguardError                      exit 10 / 500
    ├── UsageError                     exit 2  / 422  bad input, bad name, bad format
    ├── RefusedError                   exit 3  / 403
    │   ├── KeyStateError              version disabled / compromised / destroyed
    │   ├── PermissionDeniedError      the principal lacks a grant or role
    │   │   ├── SecondFactorError      exit 3  / 401  wrong or already used TOTP code
    │   │   └── SecondFactorLockedError exit 3 / 429  too many wrong codes: locked for a while
    │   ├── MfaRequiredError           a second factor is needed
    │   └── KeyRejectedError           exit 2  / 422  key material refused on import (weak, compromised)
    ├── NotFoundError                  exit 4  / 404
    ├── IntegrityError                 exit 5  / 409
    │   ├── InvalidTag                 ciphertext or context does not authenticate (no detail)
    │   ├── InvalidSignature           signature does not verify
    │   ├── ChainIntegrityError        audit chain broken at an event
    │   └── RootKeyError               wrong passphrase, key file or token
    ├── ConflictError                  exit 2  / 409  already exists, transition not allowed
    ├── AuditWriteError                exit 10 / 503  the event could not be written: fail closed
    └── DataFileError                  exit 2  / 500  an invalid rule / playbook / regulation file

Messages never carry key material, plaintext or tokens.
"""

from __future__ import annotations


class KeyguardError(Exception):
    """Base of every keyguard error."""

    exit_code: int = 10
    http_status: int = 500
    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(KeyguardError):
    """Bad usage or bad input."""

    exit_code = 2
    http_status = 422


class ConflictError(KeyguardError):
    """The request conflicts with the current state (exists already, transition not allowed)."""

    exit_code = 2
    http_status = 409


class RefusedError(KeyguardError):
    """The operation is refused."""

    exit_code = 3
    http_status = 403


class KeyStateError(RefusedError):
    """A key version's state forbids the operation."""

    def __init__(self, key: str, version: int, state: str, op: str) -> None:
        super().__init__(
            f"version {version} is {state}",
            hint=f"key {key!r} refuses {op} with version {version}",
        )
        self.key = key
        self.version = version
        self.state = state
        self.op = op


class PermissionDeniedError(RefusedError):
    """The principal may not perform the operation."""


class SecondFactorError(PermissionDeniedError):
    """The TOTP code is wrong, or was accepted once already (HTTP 401)."""

    http_status = 401


class SecondFactorLockedError(PermissionDeniedError):
    """Too many wrong second factors: every code is refused for ``retry_after`` seconds (HTTP 429)."""

    http_status = 429

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class MfaRequiredError(RefusedError):
    """A second factor (TOTP) is required."""


class KeyRejectedError(RefusedError):
    """Key material refused on import: weak, or a version that was compromised (exit 2, HTTP 422)."""

    exit_code = 2
    http_status = 422


class NotFoundError(KeyguardError):
    """The named object does not exist."""

    exit_code = 4
    http_status = 404


class IntegrityError(KeyguardError):
    """Something failed authentication: tampered data, broken chain, wrong root key."""

    exit_code = 5
    http_status = 409


class InvalidTag(IntegrityError):  # noqa: N818 - keeps cryptography's name on purpose
    """The ciphertext or its context does not authenticate. Carries no detail, ever."""

    def __init__(self, message: str = "ciphertext does not authenticate", **kw: str) -> None:
        super().__init__(message, hint=kw.get("hint", "tampered, truncated, or wrong context"))


class InvalidSignature(IntegrityError):  # noqa: N818 - keeps cryptography's name on purpose
    """The signature does not verify."""

    def __init__(self, message: str = "signature does not verify") -> None:
        super().__init__(message, hint="the message or the signature was altered, or wrong key")


class ChainIntegrityError(IntegrityError):
    """The audit chain is broken; ``event_id`` names the first bad event."""

    def __init__(self, event_id: int, reason: str) -> None:
        super().__init__(
            f"audit chain broken at event {event_id}: {reason}",
            hint="the log was modified, reordered or truncated",
        )
        self.event_id = event_id
        self.reason = reason


class RootKeyError(IntegrityError):
    """The root of trust does not open the vault."""


class AuditWriteError(KeyguardError):
    """The audit event could not be written, so the operation was refused (fail closed)."""

    exit_code = 10
    http_status = 503


class DataFileError(KeyguardError):
    """A data file (rules, playbook, regulations, detections) is invalid."""

    exit_code = 2
    http_status = 500
