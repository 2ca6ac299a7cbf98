"""The model server's HTTP API around a real ModelServer: boundary inputs get a 4xx naming the field, never 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.serving.bootstrap import bootstrap
from services.serving.entrypoints.http import create_app
from services.serving.service import ModelServer
from shared.settings import Settings
from tests.unit.serving_fakes import OneVersionRegistry, serve_churn

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def registry() -> OneVersionRegistry:
    return OneVersionRegistry()


@pytest.fixture
def server(registry: OneVersionRegistry) -> ModelServer:
    return bootstrap(Settings(), model_name="churn", registry=registry, watch=False)


@pytest.fixture
def client(server: ModelServer, registry: OneVersionRegistry, tmp_path: Path) -> Iterator[TestClient]:
    serve_churn(server, registry, tmp_path)
    with TestClient(create_app(server)) as c:
        yield c


def test_prediction_is_served(client: TestClient) -> None:
    response = client.post("/predict", json={"features": {"age": 41, "plan": "pro"}, "prediction_id": "o-17"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["prediction_id"], body["model_version"], body["model_name"]) == ("o-17", 1, "churn")
    assert set(body["probabilities"]) == {"0", "1"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"features": {"age": NaN, "plan": "pro"}}', "features.age"),
        (b'{"features": {"age": 1e999, "plan": "pro"}}', "features.age"),
        (b'{"features": {"age": [[1, [2]]], "plan": "pro"}}', "features.age"),
        (b'{"features": {"age": {"deep": 1}, "plan": "pro"}}', "features.age"),
        (b'{"features": {"age": 41, "plan": 7}}', "features.plan"),
        (b'{"features": {"plan": "pro"}}', "features.age"),
        (b'{"features": [41, "pro"]}', "features"),
        (b'{"features": {"age": 41, "plan": "pro"}, "prediction_id": 5}', "prediction_id"),
        (
            json.dumps({"features": {"age": 1, "plan": "p"}, "prediction_id": "x" * 201}).encode(),
            "prediction_id",
        ),
        (b'{"prediction_id": "p"}', "features"),
        (b'{"features": {"age": 41, "plan": "\\ud800"}}', "body"),
        (b"\xff\xfe not json", "body"),
        (b"", "body"),
        (b"[]", "body"),
    ],
)
def test_bad_bodies_get_422_naming_the_field(client: TestClient, body: bytes, field: str) -> None:
    response = client.post("/predict", content=body, headers=JSON)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize(
    "features",
    [
        {"age": 2**70, "plan": "pro"},
        {"age": 1e308, "plan": "pro"},
        {"age": -1e308, "plan": "ünïcødé 💥"},
        {"age": True, "plan": "pro"},
    ],
)
def test_extreme_but_valid_values_never_give_5xx(client: TestClient, features: dict[str, Any]) -> None:
    response = client.post("/predict", json={"features": features})
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert response.json()["error"]["field"].startswith("features")


def test_two_megabytes_is_413(client: TestClient) -> None:
    body = json.dumps({"features": {"age": 41, "plan": "x" * 2_000_000}})
    response = client.post("/predict", content=body, headers=JSON)
    assert response.status_code == 413
    assert "limit" in response.json()["error"]["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_other_content_types_are_415(client: TestClient, content_type: str) -> None:
    body = json.dumps({"features": {"age": 41, "plan": "pro"}})
    response = client.post("/predict", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]["message"]


def test_a_body_without_content_type_is_read_as_json(client: TestClient) -> None:
    assert (
        client.post("/predict", content=json.dumps({"features": {"age": 41, "plan": "pro"}})).status_code
        == 200
    )


def test_before_a_model_is_loaded_predict_and_healthz_are_503(server: ModelServer) -> None:
    with TestClient(create_app(server)) as client:
        assert client.get("/healthz").status_code == 503
        response = client.post("/predict", json={"features": {"age": 41, "plan": "pro"}})
        assert response.status_code == 503 and response.json()["error"]["code"] == "no_model"
        assert client.get("/status").json()["version"] is None


def test_waiting_for_a_first_version_is_said_once_as_a_warning_not_an_error_every_check(
    server: ModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("DEBUG", logger="services.serving.service"):
        for _ in range(3):  # three alias checks before anything is registered
            assert server.refresh() is False
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelname != "DEBUG"]
    assert len(said) == 1 and said[0][0] == "WARNING", said
    assert "churn@production has nothing to serve yet" in said[0][1]


def test_openapi_declares_the_body_and_every_status(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    predict = paths["/predict"]["post"]
    assert predict["requestBody"]["content"]["application/json"]["schema"]["required"] == ["features"]
    assert set(predict["responses"]) == {"200", "413", "415", "422", "503"}
    assert set(paths["/healthz"]["get"]["responses"]) == {"200", "503"}
    assert set(paths["/status"]["get"]["responses"]) == {"200"}
