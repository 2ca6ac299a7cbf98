"""One contract for an input: what a model server answers, ingest's stream validator accepts.

A real registry process holds the models and their feature schemas; a model server (the real HTTP app) reads
them from it, and ingest's validation reads them from it too. Every prediction the server publishes goes
through ingest's own check, and the inputs the server refuses are the ones ingest would dead-letter.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression

from driftloop.process import free_port
from services.ingest.adapters.registry import RegistrySchemaSource
from services.ingest.domain.validation import EventKind, validate_batch
from services.serving.bootstrap import bootstrap
from services.serving.entrypoints.http import create_app
from services.serving.service import ModelServer
from shared.sdk.encoding import prediction_record
from shared.settings import Settings

pytestmark = pytest.mark.integration

WRITER = {"Authorization": "Bearer w-token"}
SCHEMA = {
    "features": [
        {"name": "age", "type": "integer", "nullable": False},
        {"name": "income", "type": "numeric"},
    ]
}


def model_bytes(as_text: bool = False) -> bytes:
    """A classifier answering 1 for age over 50; with ``as_text`` its classes are "0"/"1" (a text-trained one)."""
    rng = np.random.default_rng(5)
    x = pd.DataFrame({"age": rng.integers(18, 90, 300).astype(float), "income": rng.normal(50, 10, 300)})
    y = (x["age"] > 50).astype(int)
    model = LogisticRegression().fit(x, y.astype(str) if as_text else y)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    port = free_port("127.0.0.1")
    env = {
        **os.environ,
        "DRIFTLOOP_DATA_DIR": str(tmp_path),
        "DRIFTLOOP_REGISTRY_URL": f"http://127.0.0.1:{port}",
        "DRIFTLOOP_REGISTRY_TOKENS": json.dumps({"w-token": "wes:writer"}),
        "DRIFTLOOP_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port('127.0.0.1')}",  # no broker: the relay waits
        "DRIFTLOOP_LOG_LEVEL": "ERROR",
    }
    process = subprocess.Popen([sys.executable, "-m", "services.registry"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the registry did not start"
            time.sleep(0.05)
        yield url
    finally:
        process.kill()
        process.wait()


def register_and_promote(
    registry: str,
    name: str,
    schema: dict[str, Any] | None,
    *,
    create: bool = True,
    artifact: bytes | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    if create:
        body: dict[str, Any] = {"name": name} | ({"feature_schema": schema} if schema is not None else {})
        assert httpx.post(f"{registry}/models", json=body, headers=WRITER).status_code == 201
    upload = httpx.post(
        f"{registry}/models/{name}/versions/upload",
        files={"artifact": ("model.joblib", artifact or model_bytes())},
        data={"metadata": json.dumps({"tags": tags or {}})},
        headers=WRITER,
    )
    assert upload.status_code == 201, upload.text
    promoted = httpx.put(
        f"{registry}/models/{name}/aliases/production",
        json={"version": upload.json()["version"]},
        headers=WRITER,
    )
    assert promoted.status_code == 200, promoted.text


class EncodingSink:
    """Keeps the exact bytes the SDK would publish to ``predictions-raw`` for each served prediction."""

    def __init__(self) -> None:
        self.values: list[bytes] = []

    def log_prediction(
        self, model_name: str, model_version: str, features: Any, prediction: Any, **kw: Any
    ) -> str:
        record, pid = prediction_record(model_name, model_version, features, prediction, **kw)
        self.values.append(record.value)
        return pid


def ingest_reasons(registry: str, payloads: list[bytes]) -> list[str]:
    """The dead-letter reasons ingest's stream validator gives ``payloads`` (empty: all accepted)."""

    async def run() -> list[str]:
        source = RegistrySchemaSource(registry)
        try:
            result = await validate_batch(EventKind.PREDICTION, payloads, source, reject_unknown_models=True)
        finally:
            await source.aclose()
        return [rejection.reason for _, rejection in result.rejected]

    return asyncio.run(run())


def serve(tmp_path: Path, registry: str, name: str, sink: EncodingSink) -> TestClient:
    return TestClient(create_app(server_of(tmp_path, registry, name, sink)))


def server_of(tmp_path: Path, registry: str, name: str, sink: EncodingSink) -> ModelServer:
    return bootstrap(
        Settings(data_dir=tmp_path, registry_url=registry), model_name=name, sink=sink, watch=False
    )


def test_predict_refuses_what_ingest_would_dead_letter_and_serves_what_it_accepts(
    tmp_path: Path, registry: str
) -> None:
    name = f"churn-{uuid4().hex[:8]}"
    register_and_promote(registry, name, SCHEMA)
    sink = EncodingSink()
    refused = {
        "missing": ({"income": 40.0}, {("age", "missing")}),
        "unknown": ({"age": 30, "incme": 40.0}, {("incme", "unknown_feature")}),
        "wrong type": ({"age": "thirty", "income": 40.0}, {("age", "type_error")}),
        "none of the model's features": (
            {"agee": 30},
            {("age", "missing"), ("income", "missing"), ("agee", "unknown_feature")},
        ),
    }
    with serve(tmp_path, registry, name, sink) as client:
        for case, (features, expected) in refused.items():
            answer = client.post("/predict", json={"features": features})
            assert answer.status_code == 422, (case, answer.text)
            error = answer.json()["error"]
            assert {(i["feature"], i["kind"]) for i in error["issues"]} == expected, case
            for feature, _ in expected:
                assert feature in error["message"], (case, error["message"])
        assert sink.values == []  # nothing refused reached the loop

        served = client.post(
            "/predict", json={"features": {"age": 61, "income": 52.5}, "prediction_id": "p1"}
        )
        assert served.status_code == 200, served.text
        assert served.json()["prediction"] == 1
        assert client.get("/status").json()["warnings"] == []

    assert len(sink.values) == 1
    assert ingest_reasons(registry, sink.values) == []  # the served prediction is not dead-lettered
    # and the refused inputs are exactly what ingest dead-letters, for the same reasons
    would_be = [
        prediction_record(name, "1", features, 0)[0].value
        for features in (refused["unknown"][0], refused["wrong type"][0])
    ]
    assert ingest_reasons(registry, would_be) == ["unknown_feature", "feature_type_error"]


def test_a_model_without_a_schema_is_served_and_status_says_inputs_go_unchecked(
    tmp_path: Path, registry: str
) -> None:
    name = f"bare-{uuid4().hex[:8]}"
    register_and_promote(registry, name, None)
    sink = EncodingSink()
    with serve(tmp_path, registry, name, sink) as client:
        answer = client.post("/predict", json={"features": {"age": 61, "income": 52.5}})
        assert answer.status_code == 200, answer.text
        warnings = client.get("/status").json()["warnings"]
    assert len(warnings) == 1 and "no feature schema" in warnings[0] and name in warnings[0]
    assert ingest_reasons(registry, sink.values) == []  # ingest does not check a model without a schema


def test_every_version_answers_with_the_type_recorded_for_it(tmp_path: Path, registry: str) -> None:
    name = f"typed-{uuid4().hex[:8]}"
    register_and_promote(registry, name, SCHEMA)  # v1, the user's: answers 0/1 as numbers
    sink = EncodingSink()
    server = server_of(tmp_path, registry, name, sink)
    row = {"age": 61, "income": 52.5}
    with TestClient(create_app(server)) as client:
        answers = [client.post("/predict", json={"features": row}).json()]
        # v2: trained on labels read back as text (classes "0"/"1"), registered with the type to answer in
        register_and_promote(
            registry,
            name,
            None,
            create=False,
            artifact=model_bytes(as_text=True),
            tags={"output_type": "int"},
        )
        assert server.refresh() is True
        answers.append(client.post("/predict", json={"features": row}).json())
        # v3: text-trained with no record of its type: it answers as the version it replaced did
        register_and_promote(registry, name, None, create=False, artifact=model_bytes(as_text=True))
        assert server.refresh() is True
        answers.append(client.post("/predict", json={"features": row}).json())
    assert [(a["model_version"], a["prediction"]) for a in answers] == [(1, 1), (2, 1), (3, 1)]
    assert all(type(a["prediction"]) is int for a in answers)
    assert ingest_reasons(registry, sink.values) == []
    # with nothing recorded and nothing served before, a server started on v3 has only the model's word
    fresh = server_of(tmp_path, registry, name, sink)
    with TestClient(create_app(fresh)) as client:
        assert client.post("/predict", json={"features": row}).json()["prediction"] == "1"
