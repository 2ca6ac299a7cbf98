"""The ingest HTTP API with an in-memory writer and a fixed schema: status codes, per-item errors, metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from fastapi.testclient import TestClient

from services.ingest.bootstrap import bootstrap
from services.ingest.entrypoints.http import create_app
from shared.settings import Settings
from shared.topics import topic_names
from tests.unit.ingest_fakes import API_KEY, MemoryWriter, schema_source

HEADERS = {"X-API-Key": API_KEY}
TOPICS = topic_names("")


def prediction(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "model_name": "churn",
        "model_version": "7",
        "prediction_id": "p-1",
        "features": {"age": 41, "plan": "pro"},
        "prediction": 1,
        "probabilities": {"0": 0.3, "1": 0.7},
    }
    event.update(overrides)
    return event


@pytest.fixture
def writer() -> MemoryWriter:
    return MemoryWriter()


@pytest.fixture
def client(writer: MemoryWriter) -> Iterator[TestClient]:
    settings = Settings(
        ingest_api_keys={API_KEY: "checkout"}, ingest_max_body_bytes=64 * 1024, ingest_max_batch_items=100
    )
    app = create_app(bootstrap(settings, schemas=schema_source(), writer=writer), run_validator=False)
    with TestClient(app) as c:
        yield c


def test_valid_prediction_is_written_to_the_validated_topic(client: TestClient, writer: MemoryWriter) -> None:
    response = client.post("/v1/predictions", json=prediction(), headers=HEADERS)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 1 and body["rejected"] == 0
    [(topic, key, value)] = writer.records
    assert (topic, key) == (TOPICS.predictions, b"churn")
    assert msgspec.json.decode(value)["event_id"] == body["event_id"]


def test_label_endpoint(client: TestClient, writer: MemoryWriter) -> None:
    label = {"model_name": "churn", "prediction_id": "p-1", "label": 0}
    assert client.post("/v1/labels", json=label, headers=HEADERS).status_code == 202
    assert len(writer.topic(TOPICS.labels)) == 1


def test_api_key_is_required(client: TestClient) -> None:
    assert client.post("/v1/predictions", json=prediction()).status_code == 401
    assert client.post("/v1/predictions", json=prediction(), headers={"X-API-Key": "nope"}).status_code == 401
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    assert client.post("/v1/predictions", json=prediction(), headers=bearer).status_code == 202


@pytest.mark.parametrize(
    ("body", "reason", "field"),
    [
        (b'{"model_name": "churn",', "invalid_json", "body"),
        (b"\xff\xfe garbage", "invalid_json", "body"),
        (
            json.dumps(prediction(features={"age": float("nan")})).encode(),
            "non_finite_number",
            "features.age",
        ),
        (json.dumps(prediction(prediction=1e999)).encode(), "non_finite_number", "prediction"),
        (json.dumps(prediction(features=[1, 2])).encode(), "schema_error", "features"),
        (json.dumps(prediction(model_version="")).encode(), "schema_error", "model_version"),
        (json.dumps(prediction(features={"age": "forty"})).encode(), "feature_type_error", "features.age"),
        (
            json.dumps(prediction(features={"age": 3, "colour": "red"})).encode(),
            "unknown_feature",
            "features.colour",
        ),
        (json.dumps(prediction(model_name="nobody-knows-me")).encode(), "unknown_model", "model_name"),
        (
            json.dumps(prediction(occurred_at="2400-01-01T00:00:00Z")).encode(),
            "too_far_in_future",
            "occurred_at",
        ),
        (json.dumps(prediction(occurred_at="1970-01-01T00:00:00Z")).encode(), "too_old", "occurred_at"),
    ],
)
def test_bad_predictions_get_422_naming_the_field(
    client: TestClient, writer: MemoryWriter, body: bytes, reason: str, field: str
) -> None:
    response = client.post("/v1/predictions", content=body, headers=HEADERS)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["reason"] == reason
    assert any(f["field"].startswith(field) for f in error["fields"]), error
    assert writer.records == []


def test_data_quality_issues_pass_and_are_counted(client: TestClient, writer: MemoryWriter) -> None:
    events = [
        prediction(features={"age": 130, "plan": "gold"}),
        prediction(features={"age": None, "plan": "free"}),
        prediction(model_name="legacy", features={"x": None}),
    ]
    assert client.post("/v1/predictions/batch", json=events, headers=HEADERS).json()["accepted"] == 3
    service = client.app.state.service  # type: ignore[attr-defined]
    counts = {(e.model_name, f): c for e in service.quality.drain() for f, c in e.counts.items()}
    assert counts[("churn", "age")]["out_of_range"] == 1
    assert counts[("churn", "age")]["missing"] == 1
    assert counts[("churn", "plan")]["unseen_category"] == 1
    assert counts[("legacy", "x")]["missing"] == 1


def test_mixed_batch_accepts_the_good_and_reports_the_bad(client: TestClient, writer: MemoryWriter) -> None:
    events = [prediction(prediction_id=f"p-{i}") for i in range(5)]
    events[1]["features"] = {"age": "old"}
    events[3] = {"model_name": "churn"}
    response = client.post("/v1/predictions/batch", json=events, headers=HEADERS)
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (3, 2)
    assert [e["index"] for e in body["errors"]] == [1, 3]
    assert {f["field"] for f in body["errors"][1]["fields"]} >= {"model_version", "prediction_id", "features"}
    written = [msgspec.json.decode(v)["prediction_id"] for _, _, v in writer.topic(TOPICS.predictions)]
    assert written == ["p-0", "p-2", "p-4"]


def test_ndjson_batch(client: TestClient, writer: MemoryWriter) -> None:
    lines = "\n".join(json.dumps(prediction(prediction_id=f"p-{i}")) for i in range(10)) + "\nnot json\n"
    response = client.post(
        "/v1/predictions/batch", content=lines, headers={**HEADERS, "Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 202
    assert (response.json()["accepted"], response.json()["errors"][0]["index"]) == (10, 10)


def test_all_bad_batch_is_422(client: TestClient) -> None:
    response = client.post("/v1/labels/batch", json=[{"label": 1}, 5], headers=HEADERS)
    assert response.status_code == 422
    assert response.json()["rejected"] == 2
    assert client.post("/v1/labels/batch", json={"not": "a list"}, headers=HEADERS).status_code == 422


def test_size_limits_give_413(client: TestClient) -> None:
    big = [prediction(features={"age": 1, "plan": "x" * 1000}) for _ in range(80)]
    response = client.post("/v1/predictions/batch", json=big, headers=HEADERS)
    assert response.status_code == 413 and "limit" in response.json()["detail"]
    many = [prediction() for _ in range(101)]
    response = client.post("/v1/predictions/batch", json=many, headers=HEADERS)
    assert response.status_code == 413 and "101 events" in response.json()["detail"]


def test_kafka_down_is_503_with_retry_after(client: TestClient, writer: MemoryWriter) -> None:
    writer.down = True
    response = client.post("/v1/predictions", json=prediction(), headers=HEADERS)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0


def test_metrics_count_accepted_and_rejected_by_reason(client: TestClient) -> None:
    client.post(
        "/v1/predictions/batch", json=[prediction(), prediction(features={"age": "x"})], headers=HEADERS
    )
    text = client.get("/metrics").text
    assert 'driftloop_ingest_accepted_events_total{kind="prediction",source="http"} 1.0' in text
    assert 'reason="feature_type_error"' in text
    assert "driftloop_ingest_kafka_write_seconds" in text


@pytest.mark.parametrize(
    ("body", "content_type"), [(b"[]", "application/json"), (b"\n \n", "application/x-ndjson")]
)
def test_empty_batch_is_422_not_accepted(client: TestClient, body: bytes, content_type: str) -> None:
    headers = {**HEADERS, "Content-Type": content_type}
    response = client.post("/v1/predictions/batch", content=body, headers=headers)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert (error["reason"], error["fields"][0]["field"]) == ("empty_batch", "body")


@pytest.mark.parametrize(
    ("route", "content_type", "accepted"),
    [
        ("/v1/predictions", "text/plain", "application/json"),
        ("/v1/predictions", "application/x-ndjson", "application/json"),
        ("/v1/labels/batch", "application/x-www-form-urlencoded", "application/x-ndjson"),
        ("/v1/labels/batch", "multipart/form-data; boundary=x", "application/json"),
    ],
)
def test_unsupported_content_type_is_415_naming_the_accepted_ones(
    client: TestClient, writer: MemoryWriter, route: str, content_type: str, accepted: str
) -> None:
    body = json.dumps(prediction() if route == "/v1/predictions" else [{"label": 1}])
    response = client.post(route, content=body, headers={**HEADERS, "Content-Type": content_type})
    assert response.status_code == 415, response.text
    assert accepted in response.json()["detail"]
    assert writer.records == []


def test_a_body_without_content_type_is_read_as_json(client: TestClient, writer: MemoryWriter) -> None:
    request = client.build_request(
        "POST", "/v1/predictions", content=json.dumps(prediction()), headers=HEADERS
    )
    assert "Content-Type" not in request.headers
    assert client.send(request).status_code == 202
    assert len(writer.records) == 1


def test_openapi_declares_every_body_and_status(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, event in [("/v1/predictions", "PredictionLogged"), ("/v1/labels", "LabelLogged")]:
        single, batch = spec["paths"][path]["post"], spec["paths"][f"{path}/batch"]["post"]
        assert single["requestBody"]["content"]["application/json"]["schema"]["title"] == event
        assert set(batch["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
        assert batch["requestBody"]["content"]["application/json"]["schema"]["items"]["title"] == event
        for operation in (single, batch):
            assert set(operation["responses"]) == {"202", "401", "413", "415", "422", "503"}
            assert "Retry-After" in operation["responses"]["503"]["headers"]
    assert {"APIKeyHeader", "HTTPBearer"} <= set(spec["components"]["securitySchemes"])
