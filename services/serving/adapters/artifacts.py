"""Fetch a model version's artifact, verify its sha256, unpickle it: nothing unverified is ever loaded."""

from __future__ import annotations

import hashlib
import io

import joblib

from services.serving.domain.model import LoadedModel
from services.serving.errors import ModelLoadError
from shared.answer_type import OutputType
from shared.artifacts import ArtifactError, store_for_uri
from shared.feature_schema import FeatureSchema
from shared.mlflow_model import is_mlflow_model, load_estimator
from shared.settings import Settings


def verified_bytes(settings: Settings, uri: str, sha256: str) -> bytes:
    """The artifact's bytes, refused (:class:`ModelLoadError`) unless they hash to ``sha256``."""
    try:
        data = store_for_uri(settings, uri).get_bytes(uri)
    except ArtifactError as exc:
        raise ModelLoadError(f"cannot fetch {uri}: {exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ModelLoadError(
            f"artifact {uri} hashes to {actual}, not the registered {sha256}: refusing to load it"
        )
    return data


def load_model(
    settings: Settings,
    model_name: str,
    version: int,
    uri: str,
    sha256: str,
    feature_schema: FeatureSchema | None = None,
    output_type: OutputType | None = None,
) -> LoadedModel:
    """Fetch, verify and unpickle one version: a joblib-pickled scikit-learn estimator or pipeline, or an
    MLflow model (a zip of its MLmodel folder, sklearn flavor; see docs/mlflow.md)."""
    data = verified_bytes(settings, uri, sha256)
    try:
        estimator = load_estimator(data) if is_mlflow_model(data) else joblib.load(io.BytesIO(data))
    except Exception as exc:  # a bad pickle is input, not our bug: report it, keep serving the old one
        raise ModelLoadError(f"cannot unpickle version {version} of {model_name} ({uri}): {exc}") from exc
    if not hasattr(estimator, "predict"):
        raise ModelLoadError(
            f"version {version} of {model_name} has no predict(): {type(estimator).__name__}"
        )
    return LoadedModel(model_name, version, sha256, estimator, feature_schema or FeatureSchema(), output_type)


class ArtifactLoader:
    """The model server's loader port over the artifact stores ``settings`` name (file, S3)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(
        self,
        model_name: str,
        version: int,
        uri: str,
        sha256: str,
        feature_schema: FeatureSchema | None = None,
        output_type: OutputType | None = None,
    ) -> LoadedModel:
        return load_model(self.settings, model_name, version, uri, sha256, feature_schema, output_type)
