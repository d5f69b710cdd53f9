"""``connector check`` for an ``aws`` connector: who it is, and what the playbook may do."""

from __future__ import annotations

from typing import Any

from keyguard.connectors.aws_session import DENIED, UNIMPLEMENTED, AwsSession, error_code
from keyguard.connectors.base import CheckReport, PermissionCheck
from keyguard.errors import KeyguardError, RefusedError

#: Read calls probed directly: (permission, service, method, kwargs).
READS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("iam:ListUsers", "iam", "list_users", {"MaxItems": 1}),
    ("kms:ListKeys", "kms", "list_keys", {"Limit": 1}),
    ("secretsmanager:ListSecrets", "secretsmanager", "list_secrets", {"MaxResults": 1}),
    ("cloudtrail:DescribeTrails", "cloudtrail", "describe_trails", {}),
)
#: Write actions of the playbook, checked with iam:SimulatePrincipalPolicy where it exists.
WRITES = (
    "iam:ListAccessKeys", "iam:GetAccessKeyLastUsed", "iam:UpdateAccessKey", "iam:PutUserPolicy",
    "iam:CreateAccessKey", "iam:DeleteAccessKey", "kms:DisableKey", "kms:EnableKey", "kms:CreateKey",
    "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:UpdateAlias", "kms:ScheduleKeyDeletion",
    "secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage",
    "cloudtrail:LookupEvents", "s3:GetObject",
)


def check_aws(session: AwsSession) -> CheckReport:
    """Reachability (``sts:GetCallerIdentity``), read probes, and a policy simulation of the writes."""
    try:
        me = session.call("sts:GetCallerIdentity", session.client("sts").get_caller_identity)
    except RefusedError as exc:
        return CheckReport(session.name, "aws", True, "", problem=exc.message)
    except KeyguardError as exc:
        return CheckReport(session.name, "aws", False, "", problem=exc.message)
    arn = str(me.get("Arn", ""))
    checks: list[PermissionCheck] = []
    for permission, service, method, kwargs in READS:
        try:
            getattr(session.client(service), method)(**kwargs)
            checks.append(PermissionCheck(permission, True))
        except Exception as exc:  # noqa: BLE001 - each refusal is one line of the report
            code = error_code(exc)
            checks.append(PermissionCheck(permission, False if code in DENIED else None, code or type(exc).__name__))
    try:
        reply = session.client("iam").simulate_principal_policy(PolicySourceArn=arn, ActionNames=list(WRITES))
        for result in reply.get("EvaluationResults", []):
            decision = str(result.get("EvalDecision"))
            checks.append(PermissionCheck(str(result.get("EvalActionName")), decision == "allowed", decision))
    except Exception as exc:  # noqa: BLE001 - not every endpoint simulates policies
        code = error_code(exc)
        why = "refused" if code in DENIED else "unavailable" if code in UNIMPLEMENTED or not code else code
        checks += [PermissionCheck(a, None, f"not verified: iam:SimulatePrincipalPolicy {why}") for a in WRITES]
    return CheckReport(session.name, "aws", True, arn, tuple(checks))
