"""``scan --identify``'s matching of findings to owners: caching, pairing of AWS secret keys, failing connectors.

The adapter here is a table of known values (the matching logic is what is tested; the
adapters' own identify runs against the real systems in the other tests).
"""

from __future__ import annotations

from keyguard.connectors.base import Adapter, CheckReport, Identified, Step
from keyguard.connectors.errors import UnreachableError
from keyguard.connectors.registry import Connector
from keyguard.connectors.secret import Secret
from keyguard.response.identify import finding_ref, identify_findings
from keyguard.scan.model import Finding

KEY_ID = "AKIAQ3EGTESTKEY00001"
OTHER_ID = "AKIAQ3EGTESTKEY00002"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ3ab4Xk9Z"
SECRET_2 = "zJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ3ab4Xk9Y"


class Table(Adapter):
    kind = "access-key"
    steps = frozenset({Step.IDENTIFY})

    def __init__(self, connector: str, known: dict[str, str], fail: bool = False) -> None:
        super().__init__(connector)
        self.known = known
        self.fail = fail
        self.asked: list[str] = []

    def identify(self, leaked: Secret) -> Identified | None:
        self.asked.append(leaked.reveal())
        if self.fail:
            raise UnreachableError(self.connector, "nowhere", "no answer")
        ident = self.known.get(leaked.reveal())
        return Identified(self.ref(ident), "owner") if ident else None


def _connector(name: str, ctype: str, adapter: Table) -> Connector:
    return Connector(name, ctype, {adapter.kind: adapter}, lambda: CheckReport(name, ctype, True, "x"))


def _finding(rule: str, secret: str, line: int, file: str = "app.env") -> Finding:
    return Finding(rule=rule, description="", severity="high", file=file, line=line, column=1, secret=secret,
                   entropy=4.0, commit="c0ffee")


def test_ids_identified_secrets_paired_with_the_nearest_id_values_asked_once() -> None:
    aws = Table("aws", {KEY_ID: KEY_ID, OTHER_ID: OTHER_ID})
    findings = [
        _finding("generic-api-key", SECRET, 2),  # an unusual variable name: a generic rule found it
        _finding("aws-access-key-id", KEY_ID, 1),
        _finding("aws-access-key-id", OTHER_ID, 10),
        _finding("aws-secret-access-key", SECRET_2, 11),
        _finding("aws-access-key-id", KEY_ID, 30, file="other.env"),  # same value elsewhere: asked once
        _finding("github-pat", "ghp_" + "a" * 36, 20),
    ]
    found = identify_findings(findings, {"aws": _connector("aws", "aws", aws)})
    assert [f.resource for f in findings] == [f"aws/access-key/{KEY_ID}", f"aws/access-key/{KEY_ID}",
                                              f"aws/access-key/{OTHER_ID}", f"aws/access-key/{OTHER_ID}",
                                              f"aws/access-key/{KEY_ID}", None]
    assert aws.asked.count(KEY_ID) == 1 and SECRET not in aws.asked and SECRET_2 not in aws.asked
    assert found.leaked[f"aws/access-key/{KEY_ID}"].reveal() == SECRET  # what prove-dead signs with
    assert found.leaked[f"aws/access-key/{OTHER_ID}"].reveal() == SECRET_2
    external = finding_ref(findings[-1])
    assert external is not None and external.is_external and external.kind == "github-pat"


def test_a_failing_connector_is_reported_once_and_skipped() -> None:
    broken = Table("down", {}, fail=True)
    good = Table("aws", {KEY_ID: KEY_ID})
    warnings: list[str] = []
    findings = [_finding("aws-access-key-id", KEY_ID, 1), _finding("github-pat", "ghp_" + "b" * 36, 2)]
    found = identify_findings(findings, {"down": _connector("down", "redis", broken),
                                         "aws": _connector("aws", "aws", good)}, warn=warnings.append)
    assert findings[0].resource == f"aws/access-key/{KEY_ID}"
    assert len(warnings) == 1 and "down" in warnings[0] and set(found.failures) == {"down"}
    assert len(broken.asked) == 1  # not asked again after failing
