"""Schemathesis against the live app's own ``/openapi.json`` (issue 12 point 12).

Every operation is called with generated valid and invalid inputs by an admin
client; every answer must be declared in the document (status, content type,
body schema, headers), no answer may be a 5xx, and invalid input must be refused.
Examples per operation are capped so the run stays well under two minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402

pytestmark = pytest.mark.conformance

MAX_EXAMPLES = 25
# Schema-valid requests may still be refused by rules JSON Schema cannot state (a
# ciphertext of another key, weak key material, a time out of range, an algorithm
# of another purpose): those answer 422 like any bad input (SPEC §6).
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422"]
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An app over a fresh SQLite vault with a few keys and an admin token."""
    from keyguard.api import create_app
    from keyguard.store.db import create_db_engine, migrate
    from keyguard.vault.clients import ClientService
    from keyguard.vault.principal import local_admin
    from keyguard.vault.roots import KeyFileRoot
    from keyguard.vault.service import Vault

    folder: Path = tmp_path_factory.mktemp("conformance")
    engine = create_db_engine(f"sqlite:///{folder / 'keyguard.db'}")
    migrate(engine)
    vault = Vault.initialize(engine, KeyFileRoot.create(folder / "root.key"))
    admin = local_admin()
    for name, purpose in (("pay", "encrypt"), ("sig", "sign"), ("mac", "mac")):
        vault.create_key(admin, name, purpose)
    clients = ClientService(vault)
    clients.create(admin, "root", "admin", [])
    token, _ = clients.issue_token(admin, "root")
    app = create_app(vault=vault, watch=False)
    yield {"app": app, "token": token}
    vault.close()
    engine.dispose()


def _run(operation: Any, mode: Any, headers: dict[str, str]) -> str | None:
    """Drive one operation with Hypothesis; the first failure as text, or None."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers)

    try:
        check()
    except Unsatisfiable:
        return None  # nothing in this operation can be made invalid (negative mode)
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, reported together below
        return f"{operation.method.upper()} {operation.path} [{mode.value}]: {exc}"[:3000]
    return None


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_api_conforms_to_its_openapi(live: dict[str, Any], mode: str) -> None:
    from schemathesis.config import SchemathesisConfig
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_asgi("/openapi.json", live["app"], config=SchemathesisConfig.from_str(CONFIG))
    headers = {"Authorization": f"Bearer {live['token']}"}
    failures = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        failure = _run(operation, GenerationMode(mode), headers)
        if failure:
            failures.append(failure)
    assert operations >= 30
    assert not failures, f"{len(failures)} operations fail:\n\n" + "\n\n".join(failures)
