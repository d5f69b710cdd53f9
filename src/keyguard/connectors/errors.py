"""The connectors' errors: each a subclass of keyguard's tree, so ``cli`` and ``api`` map them.

    UnknownReferenceError   NotFoundError          exit 4  the reference names nothing there
    BadReferenceError       UsageError             exit 2  not CONNECTOR/KIND/ID
    ConnectorConfigError    UsageError             exit 2  a bad ``[connectors.NAME]`` table
    UnsupportedStepError    UsageError             exit 2  the adapter cannot do the step (manual task)
    MissingPermissionError  PermissionDeniedError  exit 3  the connector's identity lacks a permission
    UnreachableError        KeyguardError          exit 10 the system does not answer
    StepStateError          ConflictError          exit 2  a half-finished step needs a decision

Messages are composed from names, codes and references only, never from credentials.
"""

from __future__ import annotations

from keyguard.errors import ConflictError, KeyguardError, NotFoundError, PermissionDeniedError, UsageError


class UnknownReferenceError(NotFoundError):
    """The resource reference does not name anything the system knows."""


class BadReferenceError(UsageError):
    """The text is not a resource reference (SPEC §7)."""


class ConnectorConfigError(UsageError):
    """A connector's configuration is invalid or incomplete."""


class UnsupportedStepError(UsageError):
    """The adapter does not perform this step; the hint says how to do it by hand."""

    def __init__(self, kind: str, step: str, instructions: str) -> None:
        super().__init__(f"{kind}: step {step} is manual for this resource", hint=instructions)
        self.kind = kind
        self.step = step


class MissingPermissionError(PermissionDeniedError):
    """The connector's identity lacks a permission the step needs."""

    def __init__(self, connector: str, permission: str, hint: str | None = None) -> None:
        super().__init__(
            f"connector {connector!r} lacks permission {permission}",
            hint=hint or "grant it to the connector's identity, then run `keyguard connector check`",
        )
        self.connector = connector
        self.permission = permission


class UnreachableError(KeyguardError):
    """The system behind a connector does not answer."""

    exit_code = 10
    http_status = 502

    def __init__(self, connector: str, where: str, reason: str) -> None:
        super().__init__(
            f"connector {connector!r} cannot reach {where}: {reason}",
            hint="check the address in keyguard.toml and that the service is up",
        )
        self.connector = connector


class StepStateError(ConflictError):
    """A step cannot go on from the state it finds (for example a key slot already taken)."""
