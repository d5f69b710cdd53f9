from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keyguard.errors import DataFileError
from keyguard.policy.checks import REGISTRY, PolicyContext
from keyguard.policy.engine import gather, load_policy, run_policy

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def _key(
    name: str,
    alg: str = "aes256-gcm",
    age_days: int = 1,
    tier: str = "medium",
    state: str = "active",
) -> dict:
    return {
        "name": name,
        "tier": tier,
        "rotation_days": 90,
        "versions": [
            {
                "version": 1,
                "state": state,
                "algorithm": alg,
                "created_at": NOW - timedelta(days=age_days),
            }
        ],
    }


def _client(name: str, grants: list[str], role: str = "service", age_days: int = 200) -> dict:
    return {
        "name": name,
        "role": role,
        "grants": grants,
        "created_at": NOW - timedelta(days=age_days),
    }


CASES = {
    "key-rotation-age": ({"keys": [_key("a", age_days=10)]}, {"keys": [_key("a", age_days=120)]}),
    "algorithm-strength": ({"keys": [_key("a", "ec-p384")]}, {"keys": [_key("a", "rsa-2048")]}),
    "high-tier-hsm": (
        {"root_kind": "pkcs11", "keys": [_key("a", tier="high")]},
        {"keys": [_key("a", tier="high")]},
    ),
    "least-privilege": (
        {"clients": [_client("s", ["pay:encrypt"])]},
        {"clients": [_client("s", ["*:decrypt"])]},
    ),
    "short-lived-tokens": (
        {"tokens": [{"client": "s", "created_at": NOW, "expires_at": NOW + timedelta(hours=1)}]},
        {"tokens": [{"client": "s", "created_at": NOW, "expires_at": NOW + timedelta(days=7)}]},
    ),
    "compromised-data-moved": (
        {"keys": [_key("a", state="compromised")], "data": [{"name": "d", "key": "a", "version": 2}]},
        {"keys": [_key("a", state="compromised")], "data": [{"name": "d", "key": "a", "version": 1}]},
    ),
    "unused-grants": (
        {"clients": [_client("s", ["a:encrypt"])], "last_seen": {"s": "2026-11-27T00:00:00Z"}},
        {"clients": [_client("s", ["a:encrypt"])], "last_seen": {"s": "2026-01-01T00:00:00Z"}},
    ),
}


def _ctx(**kw: object) -> PolicyContext:
    kw.setdefault("root_kind", "keyfile")
    return PolicyContext(now=NOW, **kw)  # type: ignore[arg-type]


def test_every_check_has_cases() -> None:
    assert set(CASES) == set(REGISTRY) == set(load_policy().checks)


@pytest.mark.parametrize("name", sorted(CASES))
def test_pass_and_fail(name: str) -> None:
    params = load_policy().checks[name].params
    passing, failing = CASES[name]
    assert list(REGISTRY[name](_ctx(**passing), params)) == []
    assert len(list(REGISTRY[name](_ctx(**failing), params))) == 1


def test_bad_policy_refuses_to_load(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("checks:\n  no-such-check: {severity: high, description: x}\n")
    with pytest.raises(DataFileError):
        load_policy(bad)


def test_policy_on_a_vault(vault, admin) -> None:
    vault.create_key(admin, "legacy", "sign", algorithm="rsa-2048", tier="high")
    found = {(v.check, v.subject) for v in run_policy(gather(vault), load_policy())}
    assert ("algorithm-strength", "legacy") in found and ("high-tier-hsm", "legacy") in found
