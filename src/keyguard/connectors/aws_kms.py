"""AWS KMS keys (kind ``kms-key``, id a key id, key ARN or ``alias/NAME``)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from typing_extensions import override

from keyguard.clock import Clock
from keyguard.connectors import aws_trail
from keyguard.connectors.aws_session import AwsSession, error_code
from keyguard.connectors.base import Adapter, Identified, Inventoried, Outcome, Proof, Rotation, Step, UsageRecord
from keyguard.connectors.checkpoint import Checkpoint
from keyguard.connectors.errors import StepStateError
from keyguard.connectors.refs import Ref
from keyguard.connectors.secret import Secret

BATCH = 50
ROTATION_TAG = "keyguard-rotation"
#: Decrypt errors that mean "this key refuses to work".
REFUSED = frozenset({"DisabledException", "KMSInvalidStateException", "NotFoundException", "AccessDeniedException",
                     "IncorrectKeyException", "InvalidCiphertextException"})


class KmsKey(Adapter):
    """A KMS key: disabled, proven dead by Decrypt, replaced (alias moved, ciphertexts re-encrypted), deleted."""

    kind = "kms-key"
    steps = frozenset({Step.IDENTIFY, Step.INVENTORY, Step.CONTAIN, Step.PROVE_DEAD, Step.USAGE_SINCE,
                       Step.ROTATE, Step.RETIRE})
    manual: ClassVar[dict[Step, str]] = {
        Step.DELIVER: "nothing to deliver: consumers that use the alias now reach the new key",
        Step.CONSUMERS_SWITCHED: "check CloudTrail for Decrypt/Encrypt on the old key id since the rotation",
    }
    pending_days = 30

    def __init__(self, connector: str, session: AwsSession, clock: Clock | None = None) -> None:
        super().__init__(connector, clock)
        self.session = session
        self._kms = session.client("kms")

    def describe(self, ident: str, ref: str | None = None) -> dict[str, Any]:
        """``DescribeKey`` metadata of a key id, ARN or alias."""
        reply = self.session.call("kms:DescribeKey", lambda: self._kms.describe_key(KeyId=ident), ref=ref)
        return dict(reply["KeyMetadata"])

    def aliases(self, key_id: str) -> list[str]:
        """The aliases pointing at ``key_id``."""
        pages = self.session.call("kms:ListAliases",
                                  lambda: list(self._kms.get_paginator("list_aliases").paginate(KeyId=key_id)))
        return [a["AliasName"] for page in pages for a in page.get("Aliases", [])]

    @override
    def identify(self, leaked: Secret) -> Identified | None:
        """A key id, ARN or alias found in a leak, resolved to the key (it is a name, not a credential)."""
        value = leaked.reveal().strip()
        if not (value.startswith(("alias/", "arn:aws:kms:", "mrk-")) or len(value) == 36):
            return None
        try:
            meta = self.describe(value)
        except Exception:  # noqa: BLE001 - not a key of this account
            return None
        return Identified(self.ref(str(meta["KeyId"])), str(meta.get("Arn")),
                          {"state": meta.get("KeyState"), "aliases": self.aliases(str(meta["KeyId"]))})

    @override
    def inventory(self) -> list[Inventoried]:
        """Every customer-managed key with state, creation and aliases."""
        pages = self.session.call("kms:ListKeys", lambda: list(self._kms.get_paginator("list_keys").paginate()))
        out: list[Inventoried] = []
        for page in pages:
            for key in page.get("Keys", []):
                meta = self.describe(key["KeyId"])
                if meta.get("KeyManager") == "AWS":
                    continue
                out.append(Inventoried(self.ref(str(meta["KeyId"])), str(meta.get("KeyState")),
                                       meta.get("CreationDate"), None,
                                       {"aliases": self.aliases(str(meta["KeyId"])), "spec": meta.get("KeySpec")}))
        return out

    @override
    def contain(self, ref: Ref) -> Outcome:
        """``DisableKey``: every Encrypt, Decrypt and ReEncrypt with it is refused at once."""
        key_id = str(self.describe(ref.id, str(ref))["KeyId"])
        self.session.call("kms:DisableKey", lambda: self._kms.disable_key(KeyId=key_id), ref=str(ref))
        return Outcome(ref, Step.CONTAIN, self.clock.now(), (f"key {key_id} disabled",), {"key_id": key_id})

    def revoke_grant(self, ref: Ref, grant_id: str) -> Outcome:
        """Contain a leaked grant instead of the whole key."""
        key_id = str(self.describe(ref.id, str(ref))["KeyId"])
        self.session.call("kms:RevokeGrant", lambda: self._kms.revoke_grant(KeyId=key_id, GrantId=grant_id),
                          ref=str(ref))
        return Outcome(ref, Step.CONTAIN, self.clock.now(), (f"grant {grant_id} revoked",), {"key_id": key_id})

    @override
    def prove_dead(self, ref: Ref, leaked: Secret | None = None, samples: Sequence[str] = ()) -> Proof:
        """Dead when the key is not Enabled and ``Decrypt`` of each sample ciphertext is refused."""
        meta = self.describe(ref.id, str(ref))
        state = str(meta.get("KeyState"))
        evidence = [f"kms: key {meta['KeyId']} is {state}"]
        refused = 0
        for index, sample in enumerate(samples):
            blob = base64.b64decode(sample)
            try:
                self._kms.decrypt(CiphertextBlob=blob, KeyId=str(meta["KeyId"]))
                evidence.append(f"Decrypt of sample {index}: accepted")
            except Exception as exc:  # noqa: BLE001 - the refusal is the evidence
                code = error_code(exc)
                if code not in REFUSED:
                    raise self.session.translate(exc, "kms:Decrypt", str(ref)) from None
                refused += 1
                evidence.append(f"Decrypt of sample {index}: refused ({code})")
        return Proof(ref, self.clock.now(), state != "Enabled" and refused == len(samples), tuple(evidence))

    @override
    def usage_since(self, ref: Ref, since: datetime) -> list[UsageRecord]:
        """CloudTrail records naming the key (by id or ARN) since ``since``."""
        meta = self.describe(ref.id, str(ref))
        names = {str(meta["KeyId"]), str(meta.get("Arn"))}

        def match(record: dict[str, Any]) -> bool:
            params = record.get("requestParameters") or {}
            used = {str(params.get(k)) for k in ("keyId", "sourceKeyId", "destinationKeyId") if params.get(k)}
            used |= {str(r.get("ARN")) for r in record.get("resources") or [] if isinstance(r, dict)}
            return bool(names & used)

        found = aws_trail.records(self.session, since, match, lookup=("ResourceName", str(meta["KeyId"])))
        return [UsageRecord(ref, "cloudtrail", at, record) for at, record in found]

    @override
    def rotate(self, ref: Ref, *, ciphertexts: Sequence[str] = (), checkpoint: Path | None = None) -> Rotation:
        """A new key of the same spec, the aliases moved to it, ``ciphertexts`` re-encrypted with ``ReEncrypt``.

        The old key is enabled only for the re-encryption and disabled again. With a
        checkpoint, a run killed at any point resumes: the new key (found by its tag) is
        reused, and the ciphertexts already re-encrypted are not redone.
        """
        cp = Checkpoint(checkpoint, ref=str(ref), step="rotate") if checkpoint else None
        state: dict[str, Any] = dict(cp.state) if cp else {}
        old = self.describe(state.get("old_id") or ref.id, str(ref))
        old_id = str(old["KeyId"])
        if cp is not None and "token" not in state:
            cp.save(old_id=old_id, token=secrets.token_hex(8), was_enabled=old.get("KeyState") == "Enabled",
                    aliases=self.aliases(old_id))
            state = dict(cp.state)
        token = state.get("token") or secrets.token_hex(8)
        was_enabled = bool(state.get("was_enabled", old.get("KeyState") == "Enabled"))
        new_id = state.get("new_id") or self._find_tagged(token)
        if new_id is None:
            created = self.session.call("kms:CreateKey", lambda: self._kms.create_key(
                Description=f"keyguard rotation of {old_id}", KeyUsage=old.get("KeyUsage", "ENCRYPT_DECRYPT"),
                KeySpec=old.get("KeySpec", "SYMMETRIC_DEFAULT"),
                Tags=[{"TagKey": ROTATION_TAG, "TagValue": token}, {"TagKey": "keyguard-rotated-from",
                                                                    "TagValue": old_id}]), ref=str(ref))
            new_id = str(created["KeyMetadata"]["KeyId"])
        if cp is not None:
            cp.save(new_id=new_id)
        aliases = list(state.get("aliases") or self.aliases(old_id))
        for alias in aliases:
            self.session.call("kms:UpdateAlias", self._kms.update_alias, AliasName=alias, TargetKeyId=new_id,
                              ref=str(ref))
        done: dict[str, Any] = dict(cp.done) if cp else {}
        todo = [i for i in range(len(ciphertexts)) if str(i) not in done]
        if todo:
            if self.describe(old_id).get("KeyState") == "Disabled":
                self.session.call("kms:EnableKey", lambda: self._kms.enable_key(KeyId=old_id), ref=str(ref))
            try:
                for start in range(0, len(todo), BATCH):
                    batch = []
                    for i in todo[start:start + BATCH]:
                        reply = self.session.call(
                            "kms:ReEncrypt", self._kms.re_encrypt, CiphertextBlob=base64.b64decode(ciphertexts[i]),
                            SourceKeyId=old_id, DestinationKeyId=new_id, ref=str(ref))
                        batch.append((str(i), base64.b64encode(reply["CiphertextBlob"]).decode()))
                    if cp is not None:
                        cp.record(batch)
                    done.update(batch)
            finally:
                if not was_enabled:
                    self._disable_quietly(old_id)
        elif not was_enabled:
            self._disable_quietly(old_id)
        if cp is not None:
            cp.save(phase="done")
        pairs = tuple((ciphertexts[i], str(done[str(i)])) for i in range(len(ciphertexts)))
        return Rotation(ref, self.ref(new_id), self.clock.now(), None, pairs,
                        {"old_id": old_id, "new_id": new_id, "aliases": aliases})

    def _disable_quietly(self, key_id: str) -> None:
        if self.describe(key_id).get("KeyState") == "Enabled":
            self.session.call("kms:DisableKey", lambda: self._kms.disable_key(KeyId=key_id))

    def _find_tagged(self, token: str) -> str | None:
        pages = self.session.call("kms:ListKeys", lambda: list(self._kms.get_paginator("list_keys").paginate()))
        for page in pages:
            for key in page.get("Keys", []):
                tags = self.session.call("kms:ListResourceTags",
                                         self._kms.list_resource_tags, KeyId=key["KeyId"])
                if any(t.get("TagKey") == ROTATION_TAG and t.get("TagValue") == token for t in tags.get("Tags", [])):
                    return str(key["KeyId"])
        return None

    @override
    def retire(self, rotation: Rotation) -> Outcome:
        """Schedule the old key's deletion (30 days, the AWS default; cancellable until then)."""
        old_id = str(rotation.detail.get("old_id") or rotation.ref.id)
        if self.aliases(old_id):
            raise StepStateError(f"{rotation.ref}: aliases still point at the old key",
                                 hint="rotate again to move them")
        reply = self.session.call("kms:ScheduleKeyDeletion", lambda: self._kms.schedule_key_deletion(
            KeyId=old_id, PendingWindowInDays=self.pending_days), ref=str(rotation.ref))
        return Outcome(rotation.ref, Step.RETIRE, self.clock.now(),
                       (f"key {old_id} scheduled for deletion in {self.pending_days} days",),
                       {"deletion_date": str(reply.get("DeletionDate"))})
