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
from shared.answer_type import OutputType, as_output_type, output_type_of
from shared.feature_schema import (
    REJECTING_ISSUES,
    FeatureIssue,
    FeatureSchema,
    IssueKind,
    check_features,
    describe_issues,
)
from shared.sdk.timing import PredictionLogger
from shared.settings import Settings

log = logging.getLogger(__name__)


def refusals(schema: FeatureSchema, row: Mapping[str, Any]) -> list[FeatureIssue]:
    """Why ``row`` may not be served by a model with ``schema`` (empty: serve it).

    The issues ingest would dead-letter the served prediction for (``shared.feature_schema.REJECTING_ISSUES``:
    wrong types, unknown features), plus what the model cannot be called without: a required feature
    missing, or none of the schema's features at all. Out-of-range values and unseen categories are drift,
    served and measured by the monitor. An empty schema checks nothing (``/status`` warns about it).

    Examples
    --------
    >>> from shared.feature_schema import FeatureSpec
    >>> schema = FeatureSchema(features=[FeatureSpec(name="age", type="integer")])
    >>> [(i.feature, i.kind.value) for i in refusals(schema, {"agee": 41})]
    [('age', 'missing'), ('agee', 'unknown_feature')]
    >>> refusals(schema, {"age": 41}), refusals(FeatureSchema(), {"anything": 1})
    ([], [])
    """
    if not schema.features:
        return []
    issues = check_features(schema, row)
    refused = [i for i in issues if i.kind is IssueKind.MISSING or i.kind in REJECTING_ISSUES]
    if not any(row.get(name) is not None for name in schema.names):
        named = {i.feature for i in refused}
        refused[:0] = [
            FeatureIssue(feature=name, kind=IssueKind.MISSING, detail="none of the model's features was sent")
            for name in schema.names
            if name not in named
        ]
    return refused


NO_SCHEMA_WARNING = (
    "model {name!r} has no feature schema in the registry: /predict cannot check its inputs and the stream "
    "validator cannot check its predictions' features; register the model's feature_schema"
)


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
    warnings: list[str]


def _plain(value: Any) -> bool | int | float | str:
    """A numpy scalar as the JSON-able Python value the event contract takes."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def answered_type(champion: LoadedModel | None) -> OutputType | None:
    """The type the version serving until now answered with: what a version with no recorded type inherits."""
    if champion is None:
        return None
    return champion.output_type or output_type_of(champion.estimator)


def answer(value: Any, output_type: OutputType | None) -> bool | int | float | str:
    """One model output as JSON, in the type recorded for the version (when one is and it converts).

    Examples
    --------
    >>> answer(np.str_("0"), "int"), answer(np.int64(1), None), answer("maybe", "int")
    (0, 1, 'maybe')
    """
    plain = _plain(value)
    if output_type is None:
        return plain
    try:
        return as_output_type(plain, output_type)
    except (ValueError, OverflowError):  # an answer that is not of the recorded type is served as it is
        return plain


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
            warnings=[NO_SCHEMA_WARNING.format(name=self.model_name)]
            if model is not None and not model.feature_schema.features
            else [],
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
                    self.registry.output_type(self.model_name, target.version) or answered_type(current),
                )
            except ModelLoadError as exc:
                self._last_error, self._last_error_at = str(exc), datetime.now(UTC)
                log.error("keeping version %s of %s: %s", self.status.version, self.model_name, exc)
                return False
            self._current = loaded  # the swap: one reference assignment
            self._swaps += 1
            self._last_error = self._last_error_at = None
            log.info("%s@%s now serves version %s", self.model_name, self.alias, loaded.version)
            if not loaded.feature_schema.features:
                log.warning(NO_SCHEMA_WARNING.format(name=self.model_name))
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
        for i, row in enumerate(rows):
            issues = refusals(model.feature_schema, row)
            if issues:
                raise InvalidFeatures(
                    f"row {i}: {describe_issues(issues)}",
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
            value = answer(output, model.output_type)
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
