"""The embeddable ModelServer: verified loads, swaps, keeping the old model, publishing each prediction."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from services.serving.bootstrap import bootstrap
from services.serving.domain.model import AliasTarget
from services.serving.errors import InvalidFeatures, NoModelLoaded
from shared.artifacts import artifact_store
from shared.feature_schema import FeatureSchema, FeatureSpec
from shared.settings import Settings

pytestmark = pytest.mark.integration


def pipeline_bytes(flip: bool) -> bytes:
    rng = np.random.default_rng(3)
    x = pd.DataFrame({"x": rng.normal(size=200), "plan": rng.choice([0.0, 1.0], size=200)})
    y = (x["x"] > 0).astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, 1 - y if flip else y)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


class FakeRegistry:
    def __init__(self) -> None:
        self.target: AliasTarget | None = None
        self.schema = FeatureSchema(
            features=[
                FeatureSpec(name="x", type="numeric", nullable=False),
                FeatureSpec(name="plan", type="numeric"),
            ]
        )

    def resolve(self, model_name: str, alias: str) -> AliasTarget:
        assert self.target is not None
        return self.target

    def feature_schema(self, model_name: str) -> FeatureSchema:
        return self.schema

    def output_type(self, model_name: str, version: int) -> None:
        return None


class ListSink:
    def __init__(self) -> None:
        self.logged: list[dict[str, Any]] = []

    def log_prediction(
        self, model_name: str, model_version: str, features: Any, prediction: Any, **kw: Any
    ) -> str:
        self.logged.append(
            {"model_name": model_name, "model_version": model_version, "prediction": prediction, **kw}
        )
        return str(kw["prediction_id"])


def test_server_swaps_only_to_verified_loadable_versions(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    store = artifact_store(settings)
    registry, sink = FakeRegistry(), ListSink()
    server = bootstrap(settings, model_name="churn", sink=sink, registry=registry, watch=False)
    with pytest.raises(NoModelLoaded):
        server.predict({"x": 1.0})

    v1 = store.put_bytes("churn/1/model.joblib", pipeline_bytes(flip=False))
    registry.target = AliasTarget(1, v1.uri, v1.sha256)
    assert server.refresh() is True and server.refresh() is False
    served = server.predict({"x": 2.0, "plan": 1.0}, prediction_id="p-1")
    assert (served.model_version, served.prediction, served.prediction_id) == (1, 1, "p-1")
    assert served.probabilities is not None and served.probabilities["1"] > 0.5
    assert sink.logged[-1]["model_version"] == "1" and sink.logged[-1]["prediction_id"] == "p-1"

    v2 = store.put_bytes("churn/2/model.joblib", pipeline_bytes(flip=True))
    registry.target = AliasTarget(2, v2.uri, "0" * 64)  # the registry's hash does not match the bytes
    assert server.refresh() is False
    assert server.status.version == 1 and "refusing to load" in (server.status.last_error or "")

    v3 = store.put_bytes("churn/3/model.joblib", b"not a pickle")
    registry.target = AliasTarget(3, v3.uri, v3.sha256)
    assert server.refresh() is False and "cannot unpickle" in (server.status.last_error or "")
    assert server.predict({"x": 2.0, "plan": 0.0}).model_version == 1

    registry.target = AliasTarget(2, v2.uri, v2.sha256)
    assert server.refresh() is True
    assert server.status.last_error is None and server.status.swaps == 2
    assert server.predict({"x": 2.0, "plan": 0.0}).prediction == 0

    with pytest.raises(InvalidFeatures) as caught:
        server.predict({"plan": 1.0})
    assert caught.value.issues[0]["feature"] == "x" and caught.value.issues[0]["kind"] == "missing"
    with pytest.raises(InvalidFeatures, match="cannot use these features"):
        server.predict({"x": 1.0})  # plan may be missing by the schema, but this model cannot take NaN
