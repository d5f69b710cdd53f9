"""``[connectors.NAME.roles.ROLE]`` tables and ``s/m/h/d`` durations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keyguard.clock import format_span, parse_span
from keyguard.connectors.config import parse_connector, parse_connectors
from keyguard.connectors.errors import ConnectorConfigError
from keyguard.connectors.leases import LeaseManager, new_username, parse_path
from keyguard.errors import UsageError


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("15m", 900), ("12h", 43200), ("90d", 7776000),
                                                (" 2H ", 7200)])
def test_spans(text: str, seconds: int) -> None:
    assert parse_span(text) == timedelta(seconds=seconds)
    assert parse_span(format_span(timedelta(seconds=seconds))) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "0m", "15", "m", "-5m", "1w", "1.5h", "99999999999d", "40000d"])
def test_bad_spans_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_span(text, "ttl")


def test_roles_parse_with_their_ttls() -> None:
    config = parse_connectors({"connectors": {"pg": {
        "type": "postgresql", "dsn": "host=x dbname=y",
        "roles": {"readonly": {"template": "app_ro", "default_ttl": "5m", "max_ttl": "1h"}}}}})["pg"]
    assert config.roles == {"readonly": {"template": "app_ro", "default_ttl": "5m", "max_ttl": "1h"}}
    spec = LeaseManager(None, None, {"pg": config}).spec("pg/role/readonly")  # type: ignore[arg-type]
    assert (spec.default_ttl, spec.max_ttl, spec.backend) == (timedelta(minutes=5), timedelta(hours=1), "postgresql")


@pytest.mark.parametrize(("table", "says"), [
    ({"type": "postgresql", "dsn": "host=x", "roles": {"ro": {}}}, "needs a template"),
    ({"type": "postgresql", "dsn": "host=x", "roles": {"ro": {"template": "t", "rules": "+get"}}}, "unknown setting"),
    ({"type": "postgresql", "dsn": "host=x", "roles": {"ro": {"template": "t", "max_ttl": "forever"}}}, "max_ttl"),
    ({"type": "postgresql", "dsn": "host=x", "roles": {"Bad Name": {"template": "t"}}}, "must be a table"),
    ({"type": "postgresql", "dsn": "host=x", "roles": "ro"}, "roles must be a table"),
    ({"type": "aws", "roles": {"ro": {"template": "t"}}}, "unknown setting 'roles'"),
])
def test_bad_roles_are_refused_with_one_line(table: dict, says: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConnectorConfigError, match=says):
        parse_connector("c", table)


def test_paths_and_usernames() -> None:
    assert parse_path("pg/role/readonly") == ("pg", "readonly")
    for bad in ("pg/user/readonly", "pg/role", "pg/role/a/b", "PG/role/x"):
        with pytest.raises(UsageError):
            parse_path(bad)
    name = new_username("read-only.role" + "x" * 60)
    assert len(name) <= 63 and name.startswith("kg_read_only_role") and name.replace("_", "").isalnum()
