"""The registry answers every input with a documented status, never a 5xx, and its OpenAPI says so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from services.registry.bootstrap import bootstrap
from services.registry.entrypoints.http import create_app
from tests.integration.test_registry_api import (
    READER,
    WRITER,
    create_model,
    registry_settings,
    upload_version,
)

pytestmark = pytest.mark.integration

BIG = 2**63
JSON = {**WRITER, "content-type": "application/json"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(bootstrap(registry_settings(tmp_path))), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def name(client: TestClient) -> str:
    model = f"m-{uuid4().hex[:8]}"
    create_model(client, model)
    upload_version(client, model)
    upload_version(client, model, tags={"team": "growth"})
    return model


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/models/{name}/versions/{big}", None),
        ("GET", "/models/{name}/versions/{big}/artifact", None),
        ("GET", "/models/{name}/versions/{big}/reference-profile", None),
        ("GET", "/models/{name}/versions/{big}/feature-importance", None),
        ("PATCH", "/models/{name}/versions/{big}", {"description": "x"}),
        ("PUT", "/models/{name}/aliases/production", {"version": BIG}),
        (
            "POST",
            "/models/{name}/versions",
            {"artifact_uri": "file:///x", "lineage": {"parent_version": BIG}},
        ),
        ("DELETE", "/models/{name}/webhooks/{big}", None),
        ("GET", "/models/{name}/webhooks/{big}/deliveries", None),
        ("GET", "/models/{name}/versions/-1", None),
    ],
)
def test_integers_past_2_63_are_refused_not_a_server_error(
    client: TestClient, name: str, method: str, path: str, body: object
) -> None:
    answer = client.request(method, path.format(name=name, big=BIG), json=body, headers=WRITER)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/models/{name}", {"description": None}, "body.description"),
        ("/models/{name}", {"tags": None}, "body.tags"),
        ("/models/{name}", {"feature_schema": None}, "body.feature_schema"),
        ("/models/{name}", {"training_recipe": None}, "body.training_recipe"),
        ("/models/{name}/versions/2", {"tags": None}, "body.tags"),
        ("/models/{name}/versions/2", {"metrics": None}, "body.metrics"),
        ("/models/{name}/versions/2", {"status": None}, "body.status"),
    ],
)
def test_null_for_a_field_that_cannot_be_null_is_refused_and_nothing_changes(
    client: TestClient, name: str, path: str, body: dict[str, object], field: str
) -> None:
    answer = client.patch(path.format(name=name), json=body, headers=WRITER)
    assert answer.status_code == 422 and answer.json()["error"]["field"] == field, answer.text
    version = client.get(f"/models/{name}/versions/2")
    assert version.status_code == 200 and version.json()["tags"] == {"team": "growth"}


def test_null_drift_thresholds_go_back_to_the_defaults(client: TestClient, name: str) -> None:
    answer = client.patch(f"/models/{name}", json={"drift_thresholds": None}, headers=WRITER)
    assert answer.status_code == 200 and answer.json()["drift_thresholds"] is None


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/models", b"{bad"),
        ("/models", b"[" * 5000 + b"]" * 5000),  # nested past the JSON parser's limit
        ("/models", b'{"name": "n", "training_recipe": {"x": 1e999}}'),
        ("/models", b'{"name": "n", "training_recipe": {"x": NaN}}'),
        ("/models", b'{"name": "n", "training_recipe": ' + b"[" * 100 + b"]" * 100 + b"}"),
        ("/models/{name}/versions", b'{"artifact_uri": "file:///x", "metrics": {"auc": 1e999}}'),
    ],
)
def test_bodies_that_are_not_plain_json_get_422(
    client: TestClient, name: str, path: str, body: bytes
) -> None:
    answer = client.post(path.format(name=name), content=body, headers=JSON)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid"


@pytest.mark.parametrize("time", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_times_outside_the_utc_calendar_get_422(client: TestClient, name: str, time: str) -> None:
    answer = client.get(f"/models/{name}/aliases/production/at", params={"time": time})
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "time"


@pytest.mark.parametrize(
    ("path", "token"),
    [
        ("/audit", "OTIyMzM3MjAzNjg1NDc3NTgwOA"),
        ("/versions", "WyJhIiwgOTIyMzM3MjAzNjg1NDc3NTgwOF0"),
        ("/versions", "WyJhIiwiYiJd"),
    ],
)
def test_forged_page_tokens_get_422(client: TestClient, path: str, token: str) -> None:
    answer = client.get(path, params={"page_token": token})  # 2**63, ["a", 2**63], ["a", "b"]
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "page_token", answer.text


def test_no_token_is_401_with_a_challenge_and_a_low_role_is_403(client: TestClient, name: str) -> None:
    anonymous = client.patch(f"/models/{name}", json={"description": "x"})
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer ")
    unknown = client.get("/models", headers={"Authorization": "Bearer nope"})
    assert unknown.status_code == 401 and "WWW-Authenticate" in unknown.headers
    reader = client.patch(f"/models/{name}", json={"description": "x"}, headers=READER)
    assert reader.status_code == 403 and "WWW-Authenticate" not in reader.headers


def test_a_wrong_method_is_405_naming_every_allowed_one(client: TestClient, name: str) -> None:
    answer = client.post(f"/models/{name}", headers=WRITER)
    assert answer.status_code == 405 and answer.headers["Allow"] == "DELETE, GET, PATCH"
    assert client.put("/models").headers["Allow"] == "GET, POST"


def test_the_openapi_marks_reads_open_and_writes_with_their_role(client: TestClient, tmp_path: Path) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    read, write = paths["/models/{name}"]["get"], paths["/models/{name}"]["patch"]
    assert read["security"] == [{}, {"HTTPBearer": []}] and read["x-required-role"] == "reader"
    assert write["security"] == [{"HTTPBearer": []}] and write["x-required-role"] == "writer"
    assert paths["/models/{name}"]["delete"]["x-required-role"] == "admin"
    assert "403" not in read["responses"] and {"401", "403", "404", "422"} <= set(write["responses"])
    closed = create_app(bootstrap(registry_settings(tmp_path / "closed", registry_open_reads=False)))
    with TestClient(closed) as c:
        assert c.get("/openapi.json").json()["paths"]["/models/{name}"]["get"]["security"] == [
            {"HTTPBearer": []}
        ]
