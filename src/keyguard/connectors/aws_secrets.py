"""AWS Secrets Manager secrets (kind ``secret``, id the secret's name or ARN)."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from typing_extensions import override

from keyguard.clock import Clock
from keyguard.connectors import aws_trail
from keyguard.connectors.aws_session import AwsSession
from keyguard.connectors.base import (
    Adapter,
    Identified,
    Inventoried,
    Outcome,
    Proof,
    Rotation,
    Step,
    UsageRecord,
)
from keyguard.connectors.checkpoint import Checkpoint
from keyguard.connectors.deliver import replace_in_files
from keyguard.connectors.refs import Ref
from keyguard.connectors.secret import Secret

CURRENT, PREVIOUS = "AWSCURRENT", "AWSPREVIOUS"


def new_value_like(old: str) -> str:
    """A fresh random value of the same shape: a JSON object keeps its fields, its ``password`` replaced."""
    fresh = secrets.token_urlsafe(32)
    try:
        document = json.loads(old)
    except ValueError:
        return fresh
    if isinstance(document, dict):
        field = next((k for k in ("password", "secret", "token", "api_key", "key") if k in document), "password")
        document[field] = fresh
        return json.dumps(document)
    return fresh


def _values(text: str) -> list[str]:
    try:
        document = json.loads(text)
    except ValueError:
        return [text]
    if isinstance(document, dict):
        return [text] + [str(v) for v in document.values() if isinstance(v, str)]
    return [text]


class SecretsManagerSecret(Adapter):
    """A secret: the version holding a leaked value found, replaced (staging labels moved), retired."""

    kind = "secret"
    steps = frozenset({Step.IDENTIFY, Step.INVENTORY, Step.PROVE_DEAD, Step.USAGE_SINCE, Step.ROTATE,
                       Step.DELIVER, Step.RETIRE})
    manual: ClassVar[dict[Step, str]] = {
        Step.CONTAIN: "the value opens another system: revoke it there (its own connector), then rotate here",
        Step.CONSUMERS_SWITCHED: "consumers reading AWSCURRENT switch on their next read; check their restarts",
    }

    def __init__(self, connector: str, session: AwsSession, clock: Clock | None = None) -> None:
        super().__init__(connector, clock)
        self.session = session
        self._sm = session.client("secretsmanager")

    def _names(self) -> list[dict[str, Any]]:
        pages = self.session.call("secretsmanager:ListSecrets",
                                  lambda: list(self._sm.get_paginator("list_secrets").paginate()))
        return [s for page in pages for s in page.get("SecretList", [])]

    def _value(self, secret_id: str, stage: str | None = None, version: str | None = None) -> str | None:
        kwargs: dict[str, str] = {"SecretId": secret_id}
        if version:
            kwargs["VersionId"] = version
        else:
            kwargs["VersionStage"] = stage or CURRENT
        try:
            reply = self.session.call("secretsmanager:GetSecretValue", lambda: self._sm.get_secret_value(**kwargs),
                                      ref=secret_id)
        except KeyError:
            return None
        except Exception as exc:
            if getattr(exc, "exit_code", None) == 4:
                return None
            raise
        return str(reply.get("SecretString", ""))

    def _stages(self, secret_id: str, ref: str) -> dict[str, list[str]]:
        reply = self.session.call("secretsmanager:DescribeSecret", lambda: self._sm.describe_secret(
            SecretId=secret_id), ref=ref)
        return {str(k): list(v) for k, v in reply.get("VersionIdsToStages", {}).items()}

    @override
    def identify(self, leaked: Secret) -> Identified | None:
        """The secret and version whose value (or a JSON field of it) equals the leaked value, compared in memory."""
        for entry in self._names():
            name = str(entry["Name"])
            for version, stages in self._stages(name, name).items():
                text = self._value(name, version=version)
                if text is not None and any(leaked.matches(v) for v in _values(text)):
                    return Identified(self.ref(name), name, {"version": version, "stages": stages})
        return None

    @override
    def inventory(self) -> list[Inventoried]:
        """Every secret with creation, last access and rotation state."""
        return [Inventoried(self.ref(str(s["Name"])), "rotating" if s.get("RotationEnabled") else "static",
                            s.get("CreatedDate"), s.get("LastAccessedDate"),
                            {"last_changed": str(s.get("LastChangedDate"))}) for s in self._names()]

    @override
    def prove_dead(self, ref: Ref, leaked: Secret | None = None, samples: Sequence[str] = ()) -> Proof:
        """Dead here when no labelled version (AWSCURRENT, AWSPREVIOUS) still holds the leaked value."""
        evidence: list[str] = []
        alive = False
        for version, stages in self._stages(ref.id, str(ref)).items():
            if not stages:
                continue
            text = self._value(ref.id, version=version)
            holds = leaked is not None and text is not None and any(leaked.matches(v) for v in _values(text))
            alive = alive or holds
            evidence.append(f"version {version} ({','.join(stages)}): {'holds' if holds else 'does not hold'} "
                            "the leaked value")
        return Proof(ref, self.clock.now(), leaked is not None and not alive, tuple(evidence))

    @override
    def usage_since(self, ref: Ref, since: datetime) -> list[UsageRecord]:
        """CloudTrail records naming the secret since ``since``."""
        arn = str(self.session.call("secretsmanager:DescribeSecret", lambda: self._sm.describe_secret(
            SecretId=ref.id), ref=str(ref)).get("ARN"))

        def match(record: dict[str, Any]) -> bool:
            params = record.get("requestParameters") or {}
            return str(params.get("secretId")) in {ref.id, arn}

        found = aws_trail.records(self.session, since, match, lookup=("ResourceName", arn))
        return [UsageRecord(ref, "cloudtrail", at, record) for at, record in found]

    @override
    def rotate(self, ref: Ref, *, ciphertexts: Sequence[str] = (), checkpoint: Path | None = None) -> Rotation:
        """A new AWSCURRENT version (the old one becomes AWSPREVIOUS). Idempotent by its request token."""
        cp = Checkpoint(checkpoint, ref=str(ref), step="rotate") if checkpoint else None
        stages = self._stages(ref.id, str(ref))
        old_version = next((v for v, s in stages.items() if CURRENT in s), None)
        if cp is not None and "token" in cp.state:
            token, old_version = str(cp.state["token"]), cp.state.get("old_version", old_version)
        else:
            token = str(uuid.uuid4())
            if cp is not None:
                cp.save(token=token, old_version=old_version)
        if token in stages and CURRENT in stages[token]:  # a killed run already put it
            value = self._value(ref.id, version=token) or ""
        else:
            value = new_value_like(self._value(ref.id, version=old_version) or "" if old_version else "")
            self.session.call("secretsmanager:PutSecretValue", lambda: self._sm.put_secret_value(
                SecretId=ref.id, ClientRequestToken=token, SecretString=value, VersionStages=[CURRENT]), ref=str(ref))
        if cp is not None:
            cp.save(phase="done")
        return Rotation(ref, ref, self.clock.now(), Secret(value),
                        detail={"old_version": old_version, "new_version": token})

    @override
    def deliver(self, rotation: Rotation, targets: Sequence[Path], old: Secret | None = None) -> Outcome:
        """Consumers reading AWSCURRENT have it already; files holding the old value are rewritten."""
        actions = ["AWSCURRENT points at the new version"]
        changed: list[str] = []
        if old is not None and rotation.new_secret is not None and targets:
            changed = replace_in_files(targets, old.reveal(), rotation.new_secret)
            actions += [f"wrote {p}" for p in changed]
        return Outcome(rotation.ref, Step.DELIVER, self.clock.now(), tuple(actions), {"files": changed})

    @override
    def retire(self, rotation: Rotation) -> Outcome:
        """Take AWSPREVIOUS off the old version: unlabelled, it is deprecated and removed by Secrets Manager."""
        old_version = rotation.detail.get("old_version")
        stages = self._stages(rotation.ref.id, str(rotation.ref))
        if not old_version or PREVIOUS not in stages.get(str(old_version), []):
            return Outcome(rotation.ref, Step.RETIRE, self.clock.now(), ("old version already unlabelled",))
        self.session.call("secretsmanager:UpdateSecretVersionStage", lambda: self._sm.update_secret_version_stage(
            SecretId=rotation.ref.id, VersionStage=PREVIOUS, RemoveFromVersionId=str(old_version)),
            ref=str(rotation.ref))
        return Outcome(rotation.ref, Step.RETIRE, self.clock.now(),
                       (f"version {old_version} lost {PREVIOUS}: deprecated",), {"version": old_version})
