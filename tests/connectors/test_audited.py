"""Connector steps land in keyguard's own audit log with the reference, and the chain verifies."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from keyguard.audit.log import AuditLog
from keyguard.audit.reading import iter_events, verify_log
from keyguard.connectors.audited import audit_key, audit_step
from keyguard.connectors.base import Outcome, Proof, Step
from keyguard.connectors.errors import MissingPermissionError, UnsupportedStepError
from keyguard.connectors.external import ExternalCredential
from keyguard.connectors.refs import Ref, parse_ref
from keyguard.store.db import create_db_engine, migrate


def test_steps_are_audited_with_the_reference(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'keyguard.db'}")
    migrate(engine)
    log = AuditLog(engine)
    ref = parse_ref("pg/role/billing")
    now = datetime.now(UTC)
    audit_step(log, actor="responder", ref=ref, step=Step.CONTAIN,
               run=lambda: Outcome(ref, Step.CONTAIN, now, ("password replaced", "2 session(s) terminated")))
    audit_step(log, actor="responder", ref=ref, step=Step.PROVE_DEAD,
               run=lambda: Proof(ref, now, True, ("login refused",)))

    def refused() -> None:
        raise MissingPermissionError("pg", "pg_terminate_backend")

    with pytest.raises(MissingPermissionError):
        audit_step(log, actor="responder", ref=ref, step=Step.RETIRE, run=refused)
    external = parse_ref("external/github-pat/sha256:ab12")
    with pytest.raises(UnsupportedStepError):
        audit_step(log, actor="responder", ref=external, step=Step.CONTAIN,
                   run=lambda: ExternalCredential("github-pat").contain(external))

    events = list(iter_events(engine))
    assert [(e["op"], e["result"], e["key"]) for e in events] == [
        ("connector.contain", "ok", "pg/role/billing"),
        ("connector.prove_dead", "ok", "pg/role/billing"),
        ("connector.retire", "denied", "pg/role/billing"),
        ("connector.contain", "error", "external/github-pat/sha256:ab12"),
    ]
    assert events[0]["reason"] == "pg/role/billing: password replaced; 2 session(s) terminated"
    assert events[1]["reason"].startswith("pg/role/billing: proven dead")
    verify_log(engine)


def test_long_references_fit_the_key_column() -> None:
    ref = Ref("aws-prod", "kms-key", "arn:aws:kms:eu-west-1:123456789012:key/" + "0" * 36)
    key = audit_key(ref)
    assert len(key) <= 64 and key.startswith("aws-prod/kms-key/sha256:")
    assert audit_key(Ref("pg", "role", "x")) == "pg/role/x"
