"""The registry on a real PostgreSQL: migrations, concurrent version numbers, aliases and rollback."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from services.registry.adapters.db import make_engine
from services.registry.adapters.migrations import MIGRATIONS, current_version, migrate
from services.registry.bootstrap import bootstrap
from services.registry.entrypoints.http import create_app
from shared.settings import Settings
from tests.fixtures.postgres import PostgresServer

pytestmark = pytest.mark.integration

WRITER = {"Authorization": "Bearer w"}


@pytest.fixture
def client(postgres: PostgresServer, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path,
        registry_database_url=postgres.database(),
        registry_tokens={"w": "wes:writer"},
        registry_relay_enabled=False,
    )
    with TestClient(create_app(bootstrap(settings))) as c:
        yield c


def test_migrations_apply_once_and_record_the_schema_version(postgres: PostgresServer) -> None:
    engine = make_engine(postgres.database())
    assert current_version(engine) == 0
    assert migrate(engine) == [v for v, _, _ in MIGRATIONS]
    assert migrate(engine) == []
    assert current_version(engine) == MIGRATIONS[-1][0]
    engine.dispose()


def test_concurrent_registrations_aliases_and_rollback_on_postgres(client: TestClient) -> None:
    name = f"m-{uuid4().hex[:8]}"
    assert (
        client.post("/models", json={"name": name, "tags": {"team": "x"}}, headers=WRITER).status_code == 201
    )
    versions: list[int] = []
    barrier = threading.Barrier(20)

    def register(i: int) -> None:
        barrier.wait()
        response = client.post(
            f"/models/{name}/versions/upload",
            files={"artifact": ("m", io.BytesIO(f"m{i}".encode()))},
            headers=WRITER,
        )
        assert response.status_code == 201, response.text
        versions.append(response.json()["version"])

    threads = [threading.Thread(target=register, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(versions) == list(range(1, 21))

    url = f"/models/{name}/aliases/production"
    client.put(url, json={"version": 4}, headers=WRITER)
    client.put(url, json={"version": 9}, headers=WRITER)
    assert client.post(f"{url}/rollback", headers=WRITER).json()["version"] == 4
    assert client.get(url).json()["version"] == 4
    found = client.get("/models", params={"name_prefix": name, "tag": "team=x"}).json()["items"]
    assert [m["name"] for m in found] == [name]
    assert client.get("/versions", params={"name_prefix": name, "limit": 5}).json()["next_page_token"]
    # get-version as the database writes it (the fast path) says what the listing says, aliases included
    fourth = client.get(f"/models/{name}/versions/4").json()
    listed = client.get(f"/models/{name}/versions", params={"limit": 20}).json()["items"]
    assert fourth == next(v for v in listed if v["version"] == 4) and fourth["aliases"] == ["production"]
    mlflow = client.get("/api/2.0/mlflow/model-versions/get", params={"name": name, "version": 4}).json()
    assert mlflow["model_version"]["aliases"] == ["production"]
    actions = [
        e["action"] for e in client.get("/audit", params={"model": name, "limit": 1000}).json()["items"]
    ]
    assert actions.count("version.register") == 20 and actions[0] == "alias.rolled_back"


def test_values_postgresql_cannot_hold_are_422_not_a_server_error(client: TestClient) -> None:
    name = f"m-{uuid4().hex[:8]}"
    assert client.post("/models", json={"name": name}, headers=WRITER).status_code == 201
    for method, path, body in (
        ("GET", "/models/a%00b", None),
        ("GET", "/models/a%00b/aliases/production", None),
        ("GET", "/models?name_prefix=%00", None),
        ("PATCH", f"/models/{name}", {"description": "a\x00b"}),
        ("PUT", f"/models/{name}/aliases/p%00", {"version": 1}),
        ("GET", f"/models/{name}/versions/{2**63}", None),
    ):
        answer = client.request(method, path, json=body, headers=WRITER)
        assert answer.status_code == 422, (method, path, answer.status_code, answer.text)
        assert answer.json()["error"]["code"] == "invalid"
    assert client.get(f"/models/{name}").json()["description"] == ""
