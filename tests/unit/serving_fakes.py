"""Fakes for the model server tests (no tests here): a small trained pipeline and a one-version registry."""

from __future__ import annotations

import io
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from services.serving.adapters.artifacts import ArtifactLoader
from services.serving.domain.model import AliasTarget
from services.serving.errors import ModelLoadError
from services.serving.service import ModelServer
from shared.artifacts import artifact_store
from shared.feature_schema import FeatureSchema, FeatureSpec
from shared.settings import Settings

SCHEMA = FeatureSchema(
    features=[
        FeatureSpec(name="age", type="numeric", nullable=False),
        FeatureSpec(name="plan", type="categorical", categories=["free", "pro"], nullable=False),
    ]
)


def model_bytes() -> bytes:
    rng = np.random.default_rng(5)
    x = pd.DataFrame({"age": rng.uniform(18, 90, size=200), "plan": rng.choice(["free", "pro"], size=200)})
    y = ((x["age"] > 50) ^ (x["plan"] == "pro")).astype(int)
    columns = make_column_transformer(
        (StandardScaler(), ["age"]), (OneHotEncoder(handle_unknown="ignore"), ["plan"])
    )
    buffer = io.BytesIO()
    joblib.dump(make_pipeline(columns, LogisticRegression()).fit(x, y), buffer)
    return buffer.getvalue()


class OneVersionRegistry:
    def __init__(self) -> None:
        self.target: AliasTarget | None = None

    def resolve(self, model_name: str, alias: str) -> AliasTarget:
        if self.target is None:  # as a registry with no version yet: the server starts without a model
            raise ModelLoadError("no version stored yet")
        return self.target

    def feature_schema(self, model_name: str) -> FeatureSchema:
        return SCHEMA

    def output_type(self, model_name: str, version: int) -> None:
        return None


def serve_churn(server: ModelServer, registry: OneVersionRegistry, data_dir: Path) -> None:
    """Store the pipeline as version 1 of ``churn`` under ``data_dir`` and make ``server`` load it."""
    settings = Settings(data_dir=data_dir)
    server.load = ArtifactLoader(settings)
    stored = artifact_store(settings).put_bytes("churn/1/model.joblib", model_bytes())
    registry.target = AliasTarget(1, stored.uri, stored.sha256)
    assert server.refresh() is True
