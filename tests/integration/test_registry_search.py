"""Searching versions by tags, status and name across models, page by page, on SQLite and PostgreSQL; the
versions as the database writes them (native and MLflow's) say what the routes say."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
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


def _tags(i: int) -> dict[str, str]:
    tags = {"team": f"t{i % 3}"}
    if i % 2:
        tags["env"] = "prod"
    return tags


def _register(client: TestClient, name: str, count: int) -> None:
    assert client.post("/models", json={"name": name}, headers=WRITER).status_code == 201
    for i in range(count):
        response = client.post(
            f"/models/{name}/versions/upload",
            files={"artifact": ("m", io.BytesIO(f"{name}-{i}".encode()))},
            data={"metadata": json.dumps({"tags": _tags(i)})},
            headers=WRITER,
        )
        assert response.status_code == 201, response.text


def _all_pages(client: TestClient, params: dict[str, object]) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    token = None
    while True:
        page = client.get("/versions", params={**params, "limit": 2, "page_token": token or ""}).json()
        found += [(v["model_name"], v["version"]) for v in page["items"]]
        token = page["next_page_token"]
        if token is None:
            return found


def test_versions_are_found_by_every_tag_filter_page_by_page(client: TestClient) -> None:
    prefix = f"s{uuid4().hex[:6]}"
    first, second = f"{prefix}-a", f"{prefix}-b"
    _register(client, first, 7)
    _register(client, second, 4)
    failed = client.patch(f"/models/{second}/versions/4", json={"status": "failed"}, headers=WRITER)
    assert failed.status_code == 200

    def expected(keep: Callable[[str, int, dict[str, str]], bool]) -> list[tuple[str, int]]:
        rows = [(m, i + 1, _tags(i)) for m, n in ((first, 7), (second, 4)) for i in range(n)]
        chosen = [(m, v) for m, v, tags in rows if keep(m, v, tags)]
        return sorted(chosen, key=lambda mv: (mv[0], -mv[1]))

    both = _all_pages(client, {"name_prefix": prefix, "tag": ["team=t1", "env=prod"]})
    assert both == expected(lambda m, v, t: t["team"] == "t1" and t.get("env") == "prod")
    assert both  # the filters leave some and drop some
    has_env = _all_pages(client, {"name_prefix": prefix, "tag": "env"})
    assert has_env == expected(lambda m, v, t: "env" in t)
    ready = _all_pages(client, {"name_prefix": prefix, "tag": "team=t0", "status": "ready"})
    assert ready == expected(lambda m, v, t: t["team"] == "t0" and (m, v) != (second, 4))
    assert _all_pages(client, {"name_prefix": prefix, "tag": "team=nobody"}) == []
    one_model = client.get(f"/models/{first}/versions", params={"tag": "env=prod"}).json()["items"]
    assert [v["version"] for v in one_model] == [6, 4, 2]


def test_the_cached_search_page_says_what_the_route_says(client: TestClient) -> None:
    """The fast path's page (encoded from the rows) equals the route's (built as VersionOut), field by
    field, with lineage, metrics, params, aliases, a reference profile and a next page."""
    name = f"m-{uuid4().hex[:8]}"
    _register(client, name, 3)
    lineage = {
        "dataset_uri": "s3://b/k",
        "data_start": "2026-03-01T00:00:00Z",
        "drift_event_id": str(uuid4()),
        "parent_version": 1,
    }
    meta = {"metrics": {"auc": 0.25}, "params": {"depth": [1, {"a": None}]}, "lineage": lineage}
    made = client.post(
        f"/models/{name}/versions/upload",
        files={"artifact": ("m", io.BytesIO(b"x"))},
        data={"metadata": json.dumps({**meta, "tags": {"team": "t0", "env": "prod"}})},
        headers=WRITER,
    )
    assert made.status_code == 201, made.text
    client.put(f"/models/{name}/aliases/production", json={"version": 4}, headers=WRITER)
    client.put(f"/models/{name}/aliases/canary", json={"version": 4}, headers=WRITER)
    store = client.app.state.registry.store  # type: ignore[attr-defined]
    for args in ({"name": name, "limit": 2}, {"name_prefix": name[:4], "tags": ["team=t0"], "limit": 100}):
        page = store.search_versions(**args)
        assert json.loads(store.search_versions_json(**args)) == json.loads(page.model_dump_json())
    served = client.get(f"/models/{name}/versions", params={"limit": 2}, headers=WRITER).json()
    assert served == json.loads(store.search_versions(name=name, limit=2).model_dump_json())
    assert served["items"][0]["aliases"] == ["canary", "production"] and served["next_page_token"]
    assert served["items"][1]["aliases"] == []


def test_a_failing_plain_read_raises_sqlalchemys_error_like_execute(tmp_path: Path) -> None:
    """Searches read through the driver directly (db.fetch_plain); a database error must still be
    SQLAlchemy's, which the fast path hands on and the app answers with 503, never an unhandled 500."""
    from sqlalchemy import column, select, table
    from sqlalchemy.exc import OperationalError

    from services.registry.adapters.db import fetch_plain, make_engine, reading

    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with reading(engine) as conn, pytest.raises(OperationalError, match="no such table"):
        fetch_plain(conn, select(column("id")).select_from(table("model_versions")), {})
    engine.dispose()


def _register_one(client: TestClient, name: str, tags: dict[str, str], description: str = "") -> None:
    response = client.post(
        f"/models/{name}/versions/upload",
        files={"artifact": ("m", io.BytesIO(uuid4().bytes))},
        data={"metadata": json.dumps({"tags": tags, "description": description})},
        headers=WRITER,
    )
    assert response.status_code == 201, response.text


def test_the_databases_mlflow_version_is_the_routes(client: TestClient) -> None:
    """MLflow's ``ModelVersion`` as the database writes it (get-version's fast path, every search page) says
    exactly what the route's ``version_json`` says: timestamps, stages, statuses, reserved tags and the
    tags' order included."""
    name = f"m-{uuid4().hex[:8]}"
    assert client.post("/models", json={"name": name}, headers=WRITER).status_code == 201
    # keys a locale would order differently from Python (case, accents, punctuation)
    _register_one(client, name, {"b": "1", "B": "2", "é": "3", "a-b": "4", "a_b": "5", "Z": "6"}, "first one")
    _register_one(client, name, {})
    _register_one(
        client, name, {"team": "t0", "q": 'a "quoted" \\ back\\slash\n\ttab 🎉'}, 'naïve ✓ "x" \\ \u2028'
    )
    _register_one(client, name, {"team": "t1"})
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
