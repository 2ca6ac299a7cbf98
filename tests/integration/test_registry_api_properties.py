"""Property-based API test: schemathesis generates requests from the registry's own OpenAPI document and
sends them to a real registry process, with and without a token; every answer must be documented.

Bounded (``EXAMPLES`` per operation and mode) so it stays a test, not a fuzzing campaign. Every check
runs but ``positive_data_acceptance``: a schema-valid request may still be refused (422) for what a schema
cannot say (a page token the registry did not issue, an artifact that is not under the root, a webhook
target that is not public), and those refusals are the point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from driftloop.process import free_port
from tests.fixtures.postgres import PostgresServer

pytestmark = pytest.mark.integration

EXAMPLES = 15
TOKENS = {"a-token": "ada:admin", "r-token": "rita:reader"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def registry(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry process on a free port: SQLite or PostgreSQL, files, no relays (nothing here needs Kafka)."""
    port = free_port()
    database = ""
    if request.param == "postgresql":  # PostgreSQL refuses some values SQLite takes (NUL in text)
        postgres: PostgresServer = request.getfixturevalue("postgres")
        database = postgres.database()
    env = {
        **os.environ,
        "DRIFTLOOP_REGISTRY_DATABASE_URL": database,
        "DRIFTLOOP_DATA_DIR": str(tmp_path_factory.mktemp("registry")),
        "DRIFTLOOP_REGISTRY_URL": f"http://127.0.0.1:{port}",
        "DRIFTLOOP_REGISTRY_TOKENS": json.dumps(TOKENS),
        "DRIFTLOOP_REGISTRY_RELAY_ENABLED": "false",
        "DRIFTLOOP_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-m", "services.registry"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "the registry did not start"
            time.sleep(0.1)
        admin = {"Authorization": "Bearer a-token"}
        httpx.post(f"{url}/models", json={"name": "m"}, headers=admin).raise_for_status()
        httpx.post(
            f"{url}/models/m/versions/upload", files={"artifact": ("m.bin", b"model")}, headers=admin
        ).raise_for_status()
        yield url
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("token", [None, "r-token", "a-token"], ids=["anonymous", "reader", "admin"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_every_operation_answers_only_documented_statuses_and_bodies(
    registry: str, token: str | None, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(f"{registry}/openapi.json")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 26
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=registry, headers=headers, timeout=30, excluded_checks=[positive_data_acceptance]
            )

        try:
            check()
        except Unsatisfiable:  # negative mode: every value of this operation's inputs is valid
            continue
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failures, then report
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
