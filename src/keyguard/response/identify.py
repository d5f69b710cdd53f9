"""From scan findings to owners and incidents (``scan --identify --open-incident``).

The scanner knows nothing of connectors: this module asks the configured connectors who
owns each finding's value (never logging in with it), fills ``finding.resource`` (SPEC §5),
and opens one incident per leaked resource, exposed at the first commit that held it.
Findings no connector owns (GitHub, Slack, Stripe … tokens) become ``external/RULE/FP``
incidents whose tasks are the provider's revoke steps.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from keyguard.connectors.external import external_ref
from keyguard.connectors.refs import Ref, parse_ref
from keyguard.connectors.registry import Connector
from keyguard.connectors.secret import Secret
from keyguard.errors import KeyguardError
from keyguard.response.leaks import ROOT_CAUSE_FILE, ROOT_CAUSE_GIT, finding_time
from keyguard.response.resource import ResourceResponder
from keyguard.scan.model import Finding

AWS_SECRET_RULES = ("aws-secret-access-key",)
AWS_SECRET_SHAPE = re.compile(r"^[A-Za-z0-9/+]{40}$")
PAIR_LINES = 5
#: Rule-id prefixes → the connector type to ask first (the others are asked after, in case).
RULE_TYPES = (("aws-", "aws"), ("hashicorp-vault", "vault"), ("vault-", "vault"), ("postgres", "postgresql"),
              ("redis", "redis"))
VALUE_TYPES = (("AKIA", "aws"), ("ASIA", "aws"), ("hvs.", "vault"), ("hvb.", "vault"), ("s.", "vault"),
               ("b.", "vault"))


@dataclass
class Identification:
    """What ``identify_findings`` found: resources by finding, and the connectors that failed."""

    identified: int = 0
    asked: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    leaked: dict[str, Secret] = field(default_factory=dict)  # ref → the value prove-dead needs


def identify_findings(findings: Sequence[Finding], connectors: Mapping[str, Connector],
                      warn: Callable[[str], None] | None = None) -> Identification:
    """Ask every connector about every distinct value; a connector that fails is reported once and skipped."""
    result = Identification()
    by_value: dict[str, Ref | None] = {}
    alive = dict(connectors)
    # Access key ids first: a secret access key beside one is then paired without asking anyone.
    ids = [f for f in findings if f.rule.startswith("aws-access-key")]
    for finding in ids + [f for f in findings if not f.rule.startswith("aws-access-key")]:
        if finding.managed_key or not finding.secret or finding.resource is not None:
            continue
        if _pair_aws_secret(finding, ids, result):
            continue
        value = finding.secret
        if value not in by_value:
            by_value[value] = None
            result.asked += 1
            likely = _likely_type(finding)
            for name, connector in sorted(alive.items(), key=lambda kv: kv[1].type != likely):
                try:
                    hits = connector.identify(Secret(value))
                except KeyguardError as exc:
                    result.failures[name] = exc.message
                    if warn is not None:
                        warn(f"connector {name}: {exc.message}; not asked again in this scan")
                    del alive[name]
                    continue
                if hits:
                    by_value[value] = hits[0].ref
                    break
        ref = by_value[value]
        if ref is not None:
            finding.resource = str(ref)
            result.identified += 1
            if ref.kind != "access-key":
                result.leaked.setdefault(str(ref), Secret(value))
    return result


def _likely_type(finding: Finding) -> str | None:
    """The connector type to ask first, from the rule or the value's own prefix (generic rules)."""
    by_rule = next((t for prefix, t in RULE_TYPES if finding.rule.startswith(prefix)), None)
    if by_rule is not None:
        return by_rule
    return next((t for prefix, t in VALUE_TYPES if finding.secret.startswith(prefix)), None)


def _pair_aws_secret(finding: Finding, ids: Sequence[Finding], result: Identification) -> bool:
    """A secret access key beside an identified access key id belongs to it: same file and commit, nearest line.

    Whichever rule found the secret (``aws-secret-access-key``, or a generic one when the variable's
    name is unusual), its value has the shape of one: 40 characters of base64.
    """
    if not AWS_SECRET_SHAPE.match(finding.secret):
        return False
    near = [k for k in ids if k.resource and k.file == finding.file and k.commit == finding.commit
            and abs(k.line - finding.line) <= PAIR_LINES]
    if not near:
        return False
    ref = str(min(near, key=lambda k: abs(k.line - finding.line)).resource)
    finding.resource = ref
    result.identified += 1
    result.leaked.setdefault(ref, Secret(finding.secret))
    return True


def finding_ref(finding: Finding) -> Ref | None:
    """The resource a finding is about: its owner, else ``external/RULE/FP`` (None for keyguard's own keys)."""
    if finding.managed_key:
        return None
    if finding.resource:
        return parse_ref(finding.resource)
    return external_ref(finding.rule, finding.secret_sha256[:32])


def open_resource_incidents(findings: Sequence[Finding], responder: ResourceResponder,
                            leaked: Mapping[str, Secret] | None = None) -> dict[str, int]:
    """Open (or update) one incident per leaked resource; returns ``{REF: incident id}``."""
    earliest: dict[str, Finding] = {}
    for finding in findings:
        ref = finding_ref(finding)
        if ref is None:
            continue
        current = earliest.get(str(ref))
        if current is None or finding_time(finding) < finding_time(current):
            earliest[str(ref)] = finding
    opened: dict[str, int] = {}
    for text, finding in sorted(earliest.items()):
        ref = parse_ref(text)
        where = f"{finding.file}:{finding.line}"
        cause = ROOT_CAUSE_GIT if finding.commit else ROOT_CAUSE_FILE
        author = f"{finding.author} <{finding.email}>" if finding.author else ""
        evidence = {"rule": finding.rule, "commit": finding.commit or "", "author": author, "location": where,
                    "exposed_at": finding_time(finding).isoformat()}
        source = f"{cause}: {where}" + (f" in commit {finding.commit[:12]}" if finding.commit else "")
        incident = responder.open(ref, finding_time(finding), source=source, leaked=(leaked or {}).get(text),
                                  evidence=evidence)
        if not incident.root_cause:
            responder.incidents.update_facts(incident.id, root_cause=f"{cause} ({source})", actor=responder.actor)
        opened[text] = incident.id
        for other in findings:
            if finding_ref(other) == ref:
                other.extra["incident"] = str(incident.id)
    return opened
