"""Resolve stays current: a move through any replica is what the next resolve on every replica answers.

Two apps over one database are two replicas (each has its own engine and resolve cache), the same as two
``REGISTRY_WORKERS`` processes or two hosts.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select

from services.registry.adapters.db import make_engine, writing
from services.registry.adapters.migrations import migrate
from services.registry.adapters.tables import change_counter
from services.registry.bootstrap import bootstrap
from services.registry.entrypoints.http import create_app
from shared.settings import Settings
from tests.fixtures.postgres import PostgresServer

pytestmark = pytest.mark.integration

TOKENS = {"r-token": "rita:reader", "w-token": "wes:writer", "a-token": "ada:admin"}
READER = {"Authorization": "Bearer r-token"}
WRITER = {"Authorization": "Bearer w-token"}
ADMIN = {"Authorization": "Bearer a-token"}


def _settings(tmp_path: Path, database_url: str = "", **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "registry_database_url": database_url,
        "registry_tokens": TOKENS,
        "registry_relay_enabled": False,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def _replicas(settings: Settings, count: int = 2) -> Iterator[list[TestClient]]:
    with ExitStack() as stack:
        yield [stack.enter_context(TestClient(create_app(bootstrap(settings)))) for _ in range(count)]


@pytest.fixture
def sqlite_replicas(tmp_path: Path) -> Iterator[list[TestClient]]:
    yield from _replicas(_settings(tmp_path))


@pytest.fixture
def postgres_replicas(postgres: PostgresServer, tmp_path: Path) -> Iterator[list[TestClient]]:
    yield from _replicas(_settings(tmp_path, postgres.database()))


def _model_with_versions(client: TestClient, count: int) -> str:
    name = f"churn-{uuid4().hex[:8]}"
    assert client.post("/models", json={"name": name}, headers=WRITER).status_code == 201
    for i in range(count):
        response = client.post(
            f"/models/{name}/versions/upload",
            files={"artifact": ("model.joblib", io.BytesIO(f"v{i}".encode()), "application/octet-stream")},
            headers=WRITER,
        )
        assert response.status_code == 201, response.text
    return name


def _moves_show_at_once_on_every_replica(writer: TestClient, reader: TestClient) -> None:
    name = _model_with_versions(writer, 3)
    url = f"/models/{name}/aliases/production"
    assert reader.get(url).status_code == 404
    for version in (1, 2, 3):
        assert writer.put(url, json={"version": version}, headers=WRITER).status_code == 200
        for _ in range(3):  # the first resolve fills the reader's cache, the others are served from it
            assert reader.get(url).json()["version"] == version
            assert writer.get(url).json()["version"] == version
    assert writer.post(f"{url}/rollback", headers=WRITER).json()["version"] == 2
    assert reader.get(url).json()["version"] == 2
    assert writer.delete(url, headers=WRITER).status_code == 204
    assert reader.get(url).status_code == 404
    assert writer.put(url, json={"version": 3}, headers=WRITER).status_code == 200
    assert reader.get(url).json()["version"] == 3
    assert writer.delete(f"/models/{name}", params={"force": "true"}, headers=ADMIN).status_code == 204
    assert reader.get(url).status_code == 404


def test_a_move_through_one_replica_is_resolved_at_once_by_another(
    sqlite_replicas: list[TestClient],
) -> None:
    writer, reader = sqlite_replicas
    _moves_show_at_once_on_every_replica(writer, reader)
    _moves_show_at_once_on_every_replica(reader, writer)


def test_a_move_through_one_replica_is_resolved_at_once_by_another_on_postgres(
    postgres_replicas: list[TestClient],
) -> None:
    writer, reader = postgres_replicas
    _moves_show_at_once_on_every_replica(writer, reader)
    _moves_show_at_once_on_every_replica(reader, writer)


def test_resolve_answers_what_the_route_documents_and_its_errors(tmp_path: Path) -> None:
    with TestClient(create_app(bootstrap(_settings(tmp_path, registry_open_reads=False)))) as client:
        name = _model_with_versions(client, 1)
        url = f"/models/{name}/aliases/production"
        assert client.put(url, json={"version": 1}, headers=WRITER).status_code == 200

        hit = client.get(url, headers=READER)
        assert hit.status_code == 200 and hit.headers["content-type"] == "application/json"
        schema = client.get("/openapi.json").json()["components"]["schemas"]["ResolvedAlias"]
        assert sorted(hit.json()) == sorted(schema["properties"])
        assert (
            hit.json()["artifact_sha256"]
            == client.get(f"/models/{name}/versions/1", headers=READER).json()["artifact_sha256"]
        )

        no_token = client.get(url)
        assert no_token.status_code == 401 and no_token.json()["error"]["code"] == "unauthenticated"
        bad_token = client.get(url, headers={"Authorization": "Bearer nope"})
        assert bad_token.status_code == 401 and bad_token.json()["error"]["field"] == "authorization"
        no_alias = client.get(f"/models/{name}/aliases/staging", headers=READER)
        assert no_alias.status_code == 404 and no_alias.json()["error"]["field"] == "alias"
        no_model = client.get("/models/nobody/aliases/production", headers=READER)
        assert no_model.status_code == 404 and no_model.json()["error"]["field"] == "name"


def test_a_database_of_an_older_registry_is_upgraded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = make_engine(url)
    migrate(engine)
    with writing(engine) as conn:  # back to the schema of migration 2 (tables as they were then)
        conn.exec_driver_sql("DROP TABLE change_counter")
        for table in ("model_tags", "version_tags"):
            conn.exec_driver_sql(f"DROP INDEX ix_{table}_key_value_owner")
            conn.exec_driver_sql(f"CREATE INDEX ix_{table}_key_value ON {table} (key, value)")
        for column in ("attempts", "last_error", "failed_at"):
            conn.exec_driver_sql(f"ALTER TABLE outbox DROP COLUMN {column}")
        conn.exec_driver_sql("DROP TABLE mlflow_records")
        conn.exec_driver_sql("DROP TABLE mlflow_artifacts")
        conn.exec_driver_sql("DROP INDEX ix_model_versions_search")
        conn.exec_driver_sql("DELETE FROM schema_migrations WHERE version > 2")
    assert migrate(engine) == [3, 4, 5, 6, 7]
    with engine.connect() as conn:
        assert conn.execute(select(change_counter.c.value)).scalars().all() == [0]
        indexes = {i["name"] for i in inspect(conn).get_indexes("version_tags")}
        assert "ix_version_tags_key_value_owner" in indexes and "ix_version_tags_key_value" not in indexes
        columns = {c["name"] for c in inspect(conn).get_columns("outbox")}
        assert {"attempts", "last_error", "failed_at"} <= columns
        assert {"mlflow_records", "mlflow_artifacts"} <= set(inspect(conn).get_table_names())
        searched = {i["name"] for i in inspect(conn).get_indexes("model_versions")}
        assert "ix_model_versions_search" in searched
    engine.dispose()

    with TestClient(create_app(bootstrap(_settings(tmp_path)))) as client:
        name = _model_with_versions(client, 2)
        url = f"/models/{name}/aliases/production"
        client.put(url, json={"version": 2}, headers=WRITER)
        assert client.get(url).json()["version"] == 2


def test_resolve_survives_its_database_connection_being_dropped(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    database_url = postgres.database()
    with TestClient(create_app(bootstrap(_settings(tmp_path, database_url)))) as client:
        name = _model_with_versions(client, 1)
        url = f"/models/{name}/aliases/production"
        client.put(url, json={"version": 1}, headers=WRITER)
        assert client.get(url).json()["version"] == 1
        admin = make_engine(database_url)
        with admin.connect() as conn:  # what a database restart or failover does to open connections
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        admin.dispose()
        assert client.get(url).json()["version"] == 1
