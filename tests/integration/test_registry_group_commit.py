"""Concurrent registrations are committed together, on SQLite and PostgreSQL, and still each gets its own
number, answer, audit entry and announcement; one refused registration fails nobody else."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.registry.adapters.store_versions import Registration
from services.registry.adapters.tables import outbox
from services.registry.bootstrap import bootstrap
from services.registry.entrypoints.http import create_app
from services.registry.service import Registry
from tests.integration.test_registry_api import ADMIN, WRITER, model_name, registry_settings, upload_version

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def system(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, Registry]]:
    overrides: dict[str, object] = {}
    if request.param == "postgresql":
        overrides["registry_database_url"] = request.getfixturevalue("postgres").database()
    registry = bootstrap(registry_settings(tmp_path, **overrides))
    with TestClient(create_app(registry)) as client:
        yield client, registry


def test_concurrent_registrations_share_transactions_and_each_is_numbered_audited_and_announced(
    system: tuple[TestClient, Registry],
) -> None:
    client, registry = system
    models = [model_name(), model_name()]
    for name in models:
        assert client.post("/models", json={"name": name}, headers=WRITER).status_code == 201
    uri = upload_version(client, models[0], b"model")["artifact_uri"]  # version 1 of the first model
    batches: list[int] = []
    write = registry.store._registrations._write

    def counted(batch: Sequence[Registration]) -> Any:
        batches.append(len(batch))
        return write(batch)

    registry.store._registrations._write = counted  # type: ignore[method-assign]
    unknown = model_name()
    targets = [models[i % 2] for i in range(30)] + [unknown, unknown]
    barrier = threading.Barrier(len(targets))
    answers: dict[int, Any] = {}

    def register(i: int) -> None:
        barrier.wait()
        body = {"artifact_uri": uri, "tags": {"caller": str(i)}, "metrics": {"auc": i / 100}}
        answers[i] = client.post(f"/models/{targets[i]}/versions", json=body, headers=WRITER)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(len(targets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert max(batches) > 1, batches  # callers arriving together were written together
    for i, target in enumerate(targets):
        if target == unknown:  # refused alone, with the app's error; its neighbours were written
            assert answers[i].status_code == 404 and answers[i].json()["error"]["field"] == "name"
            continue
        assert answers[i].status_code == 201, answers[i].text
        made = answers[i].json()
        assert made["model_name"] == target and made["tags"] == {"caller": str(i)}
        assert made == client.get(f"/models/{target}/versions/{made['version']}").json()
    for name, first in zip(models, (2, 1), strict=True):
        numbers = sorted(a.json()["version"] for a in answers.values() if a.json().get("model_name") == name)
        assert numbers == list(range(first, first + 15))  # no gap, no number given twice
        audit = client.get("/audit", params={"model": name, "limit": 100}, headers=ADMIN).json()["items"]
        registered = sorted(e["target"] for e in audit if e["action"] == "version.register")
        assert registered == sorted(f"{name}/{v}" for v in range(1, first + 15))
        with registry.engine.connect() as conn:
            payloads = conn.execute(select(outbox.c.payload).where(outbox.c.model_name == name)).scalars()
            announced = sorted(
                json.loads(p)["version"]
                for p in payloads
                if json.loads(p)["event_type"] == "model_version_registered"
            )
        assert announced == list(range(1, first + 15))
    assert client.get(f"/models/{unknown}").status_code == 404
