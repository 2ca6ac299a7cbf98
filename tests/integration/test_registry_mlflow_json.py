"""MLflow's ``ModelVersion`` as the database writes it (get-version's fast path, every search page) says
exactly what the route's ``version_json`` says, on SQLite and PostgreSQL: timestamps, stages, statuses,
reserved tags and the tags' order included."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from services.registry.bootstrap import bootstrap
from services.registry.domain.mlflow_mapping import version_json
from services.registry.entrypoints.fast_resolve import _mlflow_body
from services.registry.entrypoints.http import create_app
from services.registry.entrypoints.mlflow_search import search_page
from shared.settings import Settings
from tests.fixtures.postgres import PostgresServer

pytestmark = pytest.mark.integration

WRITER = {"Authorization": "Bearer w-token"}
MLFLOW = "/api/2.0/mlflow"


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    url = ""
    if request.param == "postgresql":
        postgres: PostgresServer = request.getfixturevalue("postgres")
        url = postgres.database()
    settings = Settings(
        data_dir=tmp_path,
        registry_database_url=url,
        registry_tokens={"w-token": "wes:writer"},
        registry_relay_enabled=False,
    )
    with TestClient(create_app(bootstrap(settings))) as c:
        yield c


def _register(client: TestClient, name: str, tags: dict[str, str], description: str = "") -> None:
    response = client.post(
        f"/models/{name}/versions/upload",
        files={"artifact": ("m", io.BytesIO(uuid4().bytes))},
        data={"metadata": json.dumps({"tags": tags, "description": description})},
        headers=WRITER,
    )
    assert response.status_code == 201, response.text


def test_the_databases_mlflow_version_is_the_routes(client: TestClient) -> None:
    name = f"m-{uuid4().hex[:8]}"
    assert client.post("/models", json={"name": name}, headers=WRITER).status_code == 201
    # keys a locale would order differently from Python (case, accents, punctuation)
    _register(client, name, {"b": "1", "B": "2", "é": "3", "a-b": "4", "a_b": "5", "Z": "6"}, "first one")
    _register(client, name, {})
    _register(client, name, {"team": "t0"}, "naïve ✓")
    _register(client, name, {"team": "t1"})
    uri = client.get(f"/models/{name}/versions/1").json()["artifact_uri"]
    created = client.post(
        f"{MLFLOW}/model-versions/create",
        json={
            "name": name,
            "source": uri,
            "run_id": "r-1",
            "tags": [{"key": "k", "value": "v"}],
        },
        headers=WRITER,
    )
    assert created.status_code == 200, created.text
    for alias, version in (("production", 1), ("staging", 1), ("staging", 2), ("canary", 3)):
        assert (
            client.put(
                f"/models/{name}/aliases/{alias}", json={"version": version}, headers=WRITER
            ).status_code
            == 200
        )
    patched = client.patch(f"/models/{name}/versions/4", json={"status": "failed"}, headers=WRITER)
    assert patched.status_code == 200, patched.text
    registry = client.app.state.registry  # type: ignore[attr-defined]
    for number in range(1, 6):
        expected = {"model_version": version_json(registry.store.get_version(name, number))}
        assert json.loads(_mlflow_body(registry, name, number)) == expected
        served = client.get(f"{MLFLOW}/model-versions/get", params={"name": name, "version": number})
        assert served.json() == expected
    first = json.loads(_mlflow_body(registry, name, 1))["model_version"]
    assert [t["key"] for t in first["tags"]] == ["B", "Z", "a-b", "a_b", "b", "é"]
    assert (first["current_stage"], first["aliases"]) == ("Production", ["production"])
    assert json.loads(_mlflow_body(registry, name, 2))["model_version"]["current_stage"] == "Staging"
    assert json.loads(_mlflow_body(registry, name, 4))["model_version"]["status"] == "FAILED_REGISTRATION"
    fifth = json.loads(_mlflow_body(registry, name, 5))["model_version"]
    assert (fifth["source"], fifth["run_id"], fifth["tags"]) == (
        uri,
        "r-1",
        [{"key": "k", "value": "v"}],
    )
    # a search page: the same messages, in the native search's order, with MLflow's page token
    native = registry.store.search_versions(name=name, limit=3)
    page = json.loads(search_page(registry, {"filter": f"name = '{name}'", "max_results": "3"}))
    assert page["model_versions"] == [version_json(v) for v in native.items]
    assert page["next_page_token"] == native.next_page_token
    last = json.loads(
        search_page(registry, {"filter": f"name = '{name}'", "page_token": page["next_page_token"]})
    )
    assert [v["version"] for v in last["model_versions"]] == ["2", "1"] and "next_page_token" not in last
    served = client.get(f"{MLFLOW}/model-versions/search", params={"filter": f"name = '{name}'"}).json()
    assert [v["version"] for v in served["model_versions"]] == ["5", "4", "3", "2", "1"]
