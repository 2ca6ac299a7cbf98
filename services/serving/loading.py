"""Fetch a model version's artifact, verify its sha256, unpickle it: nothing unverified is ever loaded."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import joblib

from services.serving.errors import ModelLoadError
from shared.answer_type import OutputType
from shared.artifacts import ArtifactError, store_for_uri
from shared.feature_schema import FeatureSchema
from shared.settings import Settings


@dataclass(frozen=True)
class LoadedModel:
    """One loaded version; swapped as a whole, so a request sees one version from start to end."""

    model_name: str
    version: int
    sha256: str
    estimator: Any
    feature_schema: FeatureSchema = field(default_factory=FeatureSchema)
    output_type: OutputType | None = None  # recorded at registration; answers are converted to it
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))


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
    """Fetch, verify and unpickle one version (a joblib-pickled scikit-learn estimator or pipeline)."""
    data = verified_bytes(settings, uri, sha256)
    try:
        estimator = joblib.load(io.BytesIO(data))
    except Exception as exc:  # a bad pickle is input, not our bug: report it, keep serving the old one
        raise ModelLoadError(f"cannot unpickle version {version} of {model_name} ({uri}): {exc}") from exc
    if not hasattr(estimator, "predict"):
        raise ModelLoadError(
            f"version {version} of {model_name} has no predict(): {type(estimator).__name__}"
        )
    return LoadedModel(model_name, version, sha256, estimator, feature_schema or FeatureSchema(), output_type)
