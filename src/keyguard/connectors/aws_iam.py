"""AWS IAM access keys (kind ``access-key``, id ``AKIA…``/``ASIA…``)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from typing_extensions import override

from keyguard.clock import Clock, format_time
from keyguard.connectors import aws_trail
from keyguard.connectors.aws_session import CREDENTIAL_REFUSED, AwsSession, error_code
from keyguard.connectors.base import (
    Adapter,
    Identified,
    Inventoried,
    Outcome,
    Proof,
    Rotation,
    Step,
    Switched,
    UsageRecord,
)
from keyguard.connectors.checkpoint import Checkpoint
from keyguard.connectors.deliver import replace_in_files
from keyguard.connectors.errors import (
    MissingPermissionError,
    StepStateError,
    UnknownReferenceError,
    UnsupportedStepError,
)
from keyguard.connectors.refs import Ref
from keyguard.connectors.secret import Secret

KEY_ID = re.compile(r"^(AKIA|ASIA)[A-Z2-7]{16}$")
DENY_POLICY = "keyguard-revoke-older-sessions"


def deny_older_sessions(now: datetime) -> dict[str, Any]:
    """The inline policy AWS documents for compromised credentials: sessions issued before ``now`` refused."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "KeyguardRevokeOlderSessions",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"DateLessThan": {"aws:TokenIssueTime": format_time(now.replace(microsecond=0))}},
        }],
    }


class IamAccessKey(Adapter):
    """An IAM user's access key: deactivated, sessions cut, proven dead, rotated and deleted."""

    kind = "access-key"
    steps = frozenset(Step)
    manual: ClassVar[dict[Step, str]] = {}

    def __init__(self, connector: str, session: AwsSession, clock: Clock | None = None) -> None:
        super().__init__(connector, clock)
        self.session = session
        self._iam = session.client("iam")

    # -- lookups ---------------------------------------------------------------------------------
    def _users(self) -> list[str]:
        pages = self.session.call("iam:ListUsers", lambda: list(self._iam.get_paginator("list_users").paginate()))
        return [u["UserName"] for page in pages for u in page.get("Users", [])]

    def _keys(self, user: str) -> list[dict[str, Any]]:
        page = self.session.call("iam:ListAccessKeys", lambda: self._iam.list_access_keys(UserName=user))
        return list(page.get("AccessKeyMetadata", []))

    def owner(self, key_id: str) -> str | None:
        """The IAM user holding ``key_id`` in this account, or None.

        ``GetAccessKeyLastUsed`` names the owner in one call; listing every user's keys is
        the fallback for identities that may list but not read last use.
        """
        try:
            reply = self.session.call("iam:GetAccessKeyLastUsed", self._iam.get_access_key_last_used,
                                      AccessKeyId=key_id)
            if reply.get("UserName"):
                return str(reply["UserName"])
        except UnknownReferenceError:
            return None
        except MissingPermissionError:
            pass
        for user in self._users():
            if any(k["AccessKeyId"] == key_id for k in self._keys(user)):
                return user
        return None

    def _owner_of(self, ref: Ref) -> str:
        if ref.id.startswith("ASIA"):
            raise UnsupportedStepError(self.kind, "contain", "temporary credentials: revoke the role's sessions "
                                       "(IAM console → role → Revoke active sessions)")
        user = self.owner(ref.id)
        if user is None:
            raise UnknownReferenceError(f"{ref}: no IAM user of this account holds that key",
                                        hint="check the connector's account and the key id")
        return user

    def _status(self, user: str | None, key_id: str) -> str:
        if user is None:
            return "deleted"
        for key in self._keys(user):
            if key["AccessKeyId"] == key_id:
                return str(key["Status"])
        return "deleted"

    def _last_used(self, key_id: str) -> tuple[datetime | None, dict[str, Any]]:
        reply = self.session.call("iam:GetAccessKeyLastUsed",
                                  lambda: self._iam.get_access_key_last_used(AccessKeyId=key_id))
        used = dict(reply.get("AccessKeyLastUsed", {}))
        at = used.get("LastUsedDate")
        return (at.astimezone(UTC) if isinstance(at, datetime) else None), used

    # -- steps -----------------------------------------------------------------------------------
    @override
    def identify(self, leaked: Secret) -> Identified | None:
        """The owner of an access key id, from IAM listings and ``sts:GetAccessKeyInfo`` (no login)."""
        key_id = leaked.reveal().strip()
        if not KEY_ID.match(key_id):
            return None
        sts = self.session.client("sts")
        account = self.session.call("sts:GetAccessKeyInfo",
                                    lambda: sts.get_access_key_info(AccessKeyId=key_id)).get("Account")
        mine = self.session.call("sts:GetCallerIdentity", lambda: sts.get_caller_identity()).get("Account")
        if account != mine:
            return None
        if key_id.startswith("ASIA"):
            return Identified(self.ref(key_id), f"account {account}", {"account": account, "temporary": True})
        user = self.owner(key_id)
        if user is None:
            return None
        return Identified(self.ref(key_id), user, {"account": account, "user": user,
                                                   "status": self._status(user, key_id)})

    @override
    def inventory(self) -> list[Inventoried]:
        """Every user's access keys with status, creation and last use."""
        out: list[Inventoried] = []
        for user in self._users():
            for key in self._keys(user):
                last, used = self._last_used(key["AccessKeyId"])
                created = key.get("CreateDate")
                out.append(Inventoried(
                    self.ref(key["AccessKeyId"]), str(key["Status"]),
                    created.astimezone(UTC) if isinstance(created, datetime) else None, last,
                    {"user": user, "service": used.get("ServiceName")},
                ))
        return out

    def blast_radius(self, ref: Ref) -> dict[str, Any]:
        """What the key could reach: the user's inline, attached and group policies, statement by statement."""
        user = self._owner_of(ref)
        docs: list[tuple[str, Any]] = []
        names = self.session.call("iam:ListUserPolicies", lambda: self._iam.list_user_policies(UserName=user))
        for name in names.get("PolicyNames", []):
            doc = self.session.call("iam:GetUserPolicy",
                                    self._iam.get_user_policy, UserName=user, PolicyName=name)
            docs.append((f"inline:{name}", doc["PolicyDocument"]))
        attached = self.session.call("iam:ListAttachedUserPolicies",
                                     lambda: self._iam.list_attached_user_policies(UserName=user))
        arns = [p["PolicyArn"] for p in attached.get("AttachedPolicies", [])]
        groups = self.session.call("iam:ListGroupsForUser", lambda: self._iam.list_groups_for_user(UserName=user))
        for group in groups.get("Groups", []):
            name = group["GroupName"]
            listed = self.session.call("iam:ListAttachedGroupPolicies",
                                       self._iam.list_attached_group_policies, GroupName=name)
            arns += [p["PolicyArn"] for p in listed.get("AttachedPolicies", [])]
        for arn in dict.fromkeys(arns):
            policy = self.session.call("iam:GetPolicy", self._iam.get_policy, PolicyArn=arn)["Policy"]
            version = self.session.call("iam:GetPolicyVersion", self._iam.get_policy_version, PolicyArn=arn,
                                        VersionId=policy["DefaultVersionId"])
            docs.append((f"managed:{arn}", version["PolicyVersion"]["Document"]))
        statements: list[dict[str, Any]] = []
        for source, doc in docs:
            body = json.loads(doc) if isinstance(doc, str) else doc
            items = body.get("Statement", [])
            for st in items if isinstance(items, list) else [items]:
                statements.append({
                    "source": source, "effect": st.get("Effect"),
                    "actions": _as_list(st.get("Action") or st.get("NotAction")),
                    "resources": _as_list(st.get("Resource") or st.get("NotResource")),
                    "conditional": bool(st.get("Condition")),
                })
        allowed = sorted({a for s in statements if s["effect"] == "Allow" and not s["conditional"]
                          for a in s["actions"]})
        return {"user": user, "statements": statements, "allows": allowed,
                "is_admin": "*" in allowed or any(a.endswith(":*") and a.startswith("iam") for a in allowed)}

    @override
    def contain(self, ref: Ref) -> Outcome:
        """Set the key Inactive and deny every session issued before now (inline policy)."""
        user = self._owner_of(ref)
        now = self.clock.now()
        self.session.call("iam:UpdateAccessKey", lambda: self._iam.update_access_key(
            UserName=user, AccessKeyId=ref.id, Status="Inactive"), ref=str(ref))
        policy = json.dumps(deny_older_sessions(now))
        self.session.call("iam:PutUserPolicy", lambda: self._iam.put_user_policy(
            UserName=user, PolicyName=DENY_POLICY, PolicyDocument=policy), ref=str(ref))
        return Outcome(ref, Step.CONTAIN, now, ("access key set Inactive",
                                                f"inline policy {DENY_POLICY} denies sessions issued before "
                                                f"{format_time(now.replace(microsecond=0))}"), {"user": user})

    @override
    def prove_dead(self, ref: Ref, leaked: Secret | None = None, samples: Sequence[str] = ()) -> Proof:
        """Dead when IAM shows the key Inactive or deleted and a call signed with the leaked pair is refused."""
        user = self.owner(ref.id)
        status = self._status(user, ref.id)
        evidence = [f"iam: key status {status}"]
        refused = False
        if leaked is not None:
            probes = (("sts", "sts:GetCallerIdentity", "get_caller_identity"), ("iam", "iam:GetUser", "get_user"))
            for service, action, method in probes:
                client = self.session.client_as(service, ref.id, leaked)
                try:
                    getattr(client, method)()
                    evidence.append(f"{action} signed with the leaked pair: accepted")
                except Exception as exc:  # noqa: BLE001 - any refusal is the evidence we want
                    code = error_code(exc)
                    if code in CREDENTIAL_REFUSED:
                        refused = True
                        evidence.append(f"{action} signed with the leaked pair: refused ({code})")
                    else:
                        raise self.session.translate(exc, action, str(ref)) from None
        else:
            evidence.append("no leaked secret given: signed call not attempted")
        return Proof(ref, self.clock.now(), status in {"Inactive", "deleted"} and refused, tuple(evidence))

    @override
    def usage_since(self, ref: Ref, since: datetime) -> list[UsageRecord]:
        """CloudTrail records made with the key (LookupEvents, trail bucket), then its last-used record."""
        found = aws_trail.records(
            self.session, since, lambda r: r.get("userIdentity", {}).get("accessKeyId") == ref.id,
            lookup=("AccessKeyId", ref.id),
        )
        out = [UsageRecord(ref, "cloudtrail", at, record) for at, record in found]
        last, used = self._last_used(ref.id)
        if last is not None and last >= since:
            out.append(UsageRecord(ref, "event", last, {
                "ts": format_time(last), "actor": f"aws:{ref.id}", "source_ip": None, "user_agent": None,
                "op": f"aws:{used.get('ServiceName', 'unknown')}", "key": str(ref), "version": None,
                "result": "ok", "reason": f"GetAccessKeyLastUsed (region {used.get('Region', '?')})",
                "request_id": None,
            }))
        return out

    @override
    def rotate(self, ref: Ref, *, ciphertexts: Sequence[str] = (), checkpoint: Path | None = None) -> Rotation:
        """A second access key for the same user. Resumable: a key left by a killed run is replaced, never added."""
        user = self._owner_of(ref)
        cp = Checkpoint(checkpoint, ref=str(ref), step="rotate") if checkpoint else None
        if cp is not None and cp.state.get("phase") == "done":
            raise StepStateError(f"{ref}: rotation already done (new key {cp.state.get('new_id')})",
                                 hint="its secret was handed over then; retire, or remove the checkpoint to redo")
        others = [k for k in self._keys(user) if k["AccessKeyId"] != ref.id]
        if others:
            mine = cp.state.get("new_id") if cp else None
            started = datetime.fromisoformat(cp.state["started_at"]) if cp and "started_at" in cp.state else None
            ours = [k for k in others if k["AccessKeyId"] == mine or (
                started is not None and k["CreateDate"].astimezone(UTC) >= started - timedelta(seconds=2))]
            if len(ours) != len(others):
                raise StepStateError(f"{ref}: user {user} already has another access key {others[0]['AccessKeyId']}",
                                     hint="AWS allows two keys per user: delete or retire the other one first")
            for key in ours:  # left by a killed run; its secret was never handed over
                self.session.call("iam:DeleteAccessKey", self._iam.delete_access_key, UserName=user,
                                  AccessKeyId=key["AccessKeyId"], ref=str(ref))
        if cp is not None:
            cp.save(phase="creating", user=user, started_at=self.clock.now().isoformat(), new_id=None)
        created = self.session.call("iam:CreateAccessKey", lambda: self._iam.create_access_key(UserName=user),
                                    ref=str(ref))["AccessKey"]
        new_id = str(created["AccessKeyId"])
        if cp is not None:
            cp.save(phase="done", new_id=new_id)
        return Rotation(ref, self.ref(new_id), self.clock.now(), Secret(str(created["SecretAccessKey"])),
                        detail={"user": user, "old_id": ref.id, "new_id": new_id})

    @override
    def deliver(self, rotation: Rotation, targets: Sequence[Path], old: Secret | None = None) -> Outcome:
        """Replace the old id and (when given) the old secret by the new pair in the consumers' files."""
        assert rotation.new_secret is not None
        changed = replace_in_files(targets, rotation.ref.id, Secret(rotation.new_ref.id))
        if old is not None:
            changed += [p for p in replace_in_files(targets, old.reveal(), rotation.new_secret) if p not in changed]
        return Outcome(rotation.ref, Step.DELIVER, self.clock.now(), tuple(f"wrote {p}" for p in changed),
                       {"files": changed})

    @override
    def consumers_switched(self, rotation: Rotation) -> Switched:
        """Switched when the new key was used after the rotation and the old one not since."""
        new_last, _ = self._last_used(rotation.new_ref.id)
        user = self.owner(rotation.ref.id)
        old_last = self._last_used(rotation.ref.id)[0] if user is not None else None
        new_ok = new_last is not None and new_last >= rotation.at - timedelta(seconds=1)
        old_quiet = old_last is None or old_last < rotation.at
        return Switched(rotation.ref, new_ok and old_quiet, (
            f"new key last used {format_time(new_last) if new_last else 'never'}",
            f"old key last used {format_time(old_last) if old_last else 'never / deleted'}",
        ))

    @override
    def retire(self, rotation: Rotation) -> Outcome:
        """Delete the old access key (the deny-older-sessions policy stays until those sessions expire)."""
        user = self.owner(rotation.ref.id)
        if user is None:
            return Outcome(rotation.ref, Step.RETIRE, self.clock.now(), ("old key already deleted",))
        self.session.call("iam:DeleteAccessKey", lambda: self._iam.delete_access_key(
            UserName=user, AccessKeyId=rotation.ref.id), ref=str(rotation.ref))
        return Outcome(rotation.ref, Step.RETIRE, self.clock.now(), ("old access key deleted",), {"user": user})


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]
