"""Every connector step as one event of keyguard's own hash-chained audit log, naming the reference.

The event is written after the step, with its outcome: ``ok``, ``denied`` (the system or
keyguard refused) or ``error``. If the event cannot be written the caller gets
:class:`~keyguard.errors.AuditWriteError` (the step itself may have happened: contain is
not undone). ``audit_events.key`` holds 64 characters, so a longer reference is stored as
its connector/kind and a digest there, and in full in ``reason``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

from keyguard.audit.log import AuditLog, EventDraft
from keyguard.connectors.base import CheckReport, Identified, Outcome, Proof, Rotation, Step, Switched
from keyguard.connectors.refs import Ref
from keyguard.errors import KeyguardError, RefusedError

T = TypeVar("T")
KEY_WIDTH = 64


def audit_key(ref: Ref) -> str:
    """The reference as it fits ``audit_events.key``."""
    text = str(ref)
    if len(text) <= KEY_WIDTH:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{ref.connector}/{ref.kind}/sha256:{digest}"[:KEY_WIDTH]


def summary(result: object) -> str:
    """One line saying what a step returned (never a credential: Secrets are not printed)."""
    if isinstance(result, Outcome):
        return "; ".join(result.actions)
    if isinstance(result, Proof):
        return ("proven dead: " if result.is_dead else "NOT proven dead: ") + "; ".join(result.evidence)
    if isinstance(result, Rotation):
        extra = f", {len(result.rewrapped)} ciphertext(s) re-encrypted" if result.rewrapped else ""
        return f"new {result.new_ref}{extra}"
    if isinstance(result, Switched):
        return ("switched: " if result.is_switched else "not switched: ") + "; ".join(result.evidence)
    if isinstance(result, Identified):
        return f"owner {result.owner}"
    if isinstance(result, CheckReport):
        return f"reachable={result.is_reachable} missing={','.join(result.missing) or 'none'}"
    if isinstance(result, list):
        return f"{len(result)} record(s)"
    return "done" if result is None else type(result).__name__


def audit_step(log: AuditLog, *, actor: str, ref: Ref, step: Step, run: Callable[[], T],
               request_id: str | None = None) -> T:
    """Run one step and append its event (op ``connector.STEP``); errors are recorded and re-raised."""
    op = f"connector.{step.value}"
    try:
        result = run()
    except KeyguardError as exc:
        outcome = "denied" if isinstance(exc, RefusedError) else "error"
        log.append(EventDraft(actor=actor, op=op, result=outcome, key=audit_key(ref), request_id=request_id,
                              reason=f"{ref}: {exc.message}"))
        raise
    except Exception as exc:
        log.append(EventDraft(actor=actor, op=op, result="error", key=audit_key(ref), request_id=request_id,
                              reason=f"{ref}: internal error ({type(exc).__name__})"))
        raise
    log.append(EventDraft(actor=actor, op=op, result="ok", key=audit_key(ref), request_id=request_id,
                          reason=f"{ref}: {summary(result)}"))
    return result
