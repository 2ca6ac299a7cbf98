"""The embeddable model server: serve the version behind an alias and swap to a new one without a gap.

A production app can embed :class:`ModelServer` directly (``predict`` is thread-safe); ``python -m
services.serving`` wraps it in HTTP. The loaded model is one immutable object replaced in a single
assignment, so a request in flight keeps the version it started with and none fails during a swap. A version
that fails to load (bad hash, bad pickle) leaves the current one serving and is reported in :attr:`status`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from services.serving.errors import InvalidFeatures, ModelLoadError, NoModelLoaded
from services.serving.loading import LoadedModel, load_model
from services.serving.registry_client import RegistryClient
from shared.feature_schema import IssueKind, check_features
from shared.sdk.timing import PredictionLogger
from shared.settings import Settings

log = logging.getLogger(__name__)

# Problems a model cannot be called with; out-of-range values and new categories are drift, not errors.
REJECTED_ISSUES = frozenset({IssueKind.MISSING, IssueKind.TYPE_ERROR})


@dataclass(frozen=True)
class Prediction:
    prediction_id: str
    model_version: int
    prediction: bool | int | float | str
    probabilities: dict[str, float] | None
    latency_ms: float


@dataclass(frozen=True)
class ServerStatus:
    model_name: str
    alias: str
    version: int | None
    sha256: str | None
    loaded_at: datetime | None
    swaps: int
    last_error: str | None
    last_error_at: datetime | None


def _plain(value: Any) -> bool | int | float | str:
    """A numpy scalar as the JSON-able Python value the event contract takes."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


class ModelServer:
    """Serves ``alias`` (default ``production``) of ``model_name``; call :meth:`refresh` when it may have moved."""

    def __init__(
        self,
        settings: Settings,
        model_name: str,
        alias: str = "production",
        *,
        sink: PredictionLogger | None = None,
        registry: RegistryClient | None = None,
    ) -> None:
        self.settings = settings
        self.model_name = model_name
        self.alias = alias
        self.sink = sink
        self.registry = registry or RegistryClient(
            settings.registry_url, settings.registry_token.get_secret_value()
        )
        self._current: LoadedModel | None = None
        self._refresh_lock = threading.Lock()
        self._swaps = 0
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    @property
    def status(self) -> ServerStatus:
        model = self._current
        return ServerStatus(
            model_name=self.model_name,
            alias=self.alias,
            version=model.version if model else None,
            sha256=model.sha256 if model else None,
            loaded_at=model.loaded_at if model else None,
            swaps=self._swaps,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
        )

    def refresh(self) -> bool:
        """Load the version the alias points at now if it is not the one serving; True when it swapped.

        Never raises for a bad version: the error is kept in :attr:`status` and the current model serves on.
        """
        with self._refresh_lock:
            try:
                target = self.registry.resolve(self.model_name, self.alias)
                current = self._current
                if current is not None and (current.version, current.sha256) == (
                    target.version,
                    target.artifact_sha256,
                ):
                    return False
                schema = self.registry.feature_schema(self.model_name)
                loaded = load_model(
                    self.settings,
                    self.model_name,
                    target.version,
                    target.artifact_uri,
                    target.artifact_sha256,
                    schema,
                )
            except ModelLoadError as exc:
                self._last_error, self._last_error_at = str(exc), datetime.now(UTC)
                log.error("keeping version %s of %s: %s", self.status.version, self.model_name, exc)
                return False
            self._current = loaded  # the swap: one reference assignment
            self._swaps += 1
            self._last_error = self._last_error_at = None
            log.info("%s@%s now serves version %s", self.model_name, self.alias, loaded.version)
            return True

    def predict(self, features: Mapping[str, Any], prediction_id: str | None = None) -> Prediction:
        """One prediction from the loaded version, published to the loop when a sink is set."""
        return self.predict_many([features], [prediction_id])[0]

    def predict_many(
        self, rows: Sequence[Mapping[str, Any]], prediction_ids: Sequence[str | None] | None = None
    ) -> list[Prediction]:
        model = self._current  # read once: the whole batch is served by one version
        if model is None:
            raise NoModelLoaded(
                f"no version of {self.model_name}@{self.alias} is loaded yet: {self._last_error or 'starting'}"
            )
        if model.feature_schema.features:
            for i, row in enumerate(rows):
                issues = [x for x in check_features(model.feature_schema, row) if x.kind in REJECTED_ISSUES]
                if issues:
                    raise InvalidFeatures(
                        f"row {i}: " + "; ".join(f"{x.feature}: {x.detail}" for x in issues),
                        [x.model_dump(mode="json") for x in issues],
                    )
        started = time.perf_counter()
        # the schema's columns in its order, so an absent nullable feature reaches the model as missing
        frame = pd.DataFrame(list(rows), columns=model.feature_schema.names or None)
        try:
            outputs = model.estimator.predict(frame)
            probabilities: list[dict[str, float] | None] = [None] * len(rows)
            if hasattr(model.estimator, "predict_proba"):
                classes = [str(_plain(c)) for c in model.estimator.classes_]
                probabilities = [
                    dict(zip(classes, map(float, p), strict=True))
                    for p in model.estimator.predict_proba(frame)
                ]
        except (ValueError, TypeError) as exc:  # what scikit-learn raises for inputs it cannot use
            raise InvalidFeatures(f"version {model.version} cannot use these features: {exc}", []) from exc
        latency_ms = (time.perf_counter() - started) * 1000 / max(1, len(rows))
        ids = list(prediction_ids or [None] * len(rows))
        served: list[Prediction] = []
        for row, output, probs, pid in zip(rows, outputs, probabilities, ids, strict=True):
            value = _plain(output)
            prediction_id = pid or uuid.uuid4().hex
            if self.sink is not None:
                self.sink.log_prediction(
                    self.model_name,
                    str(model.version),
                    row,
                    value,
                    prediction_id=prediction_id,
                    probabilities=probs,
                    latency_ms=latency_ms,
                )
            served.append(Prediction(prediction_id, model.version, value, probs, latency_ms))
        return served
