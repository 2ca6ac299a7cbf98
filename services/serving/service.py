"""The embeddable model server: serve the version behind an alias and swap to a new one without a gap.

A production app can embed :class:`ModelServer` (built by ``services.serving.bootstrap``; ``predict`` is
thread-safe); ``python -m services.serving`` wraps it in HTTP. The loaded model is one immutable object replaced in a single
assignment, so a request in flight keeps the version it started with and none fails during a swap. A version
that fails to load (bad hash, bad pickle) leaves the current one serving and is reported in :attr:`status`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import pandas as pd

from services.serving.domain.features import NO_SCHEMA_WARNING, refusals
from services.serving.domain.model import AliasTarget, LoadedModel, answer, answered_type, plain
from services.serving.domain.usage import UsageMeter
from services.serving.errors import InvalidFeatures, ModelLoadError, NoModelLoaded
from shared.answer_type import OutputType
from shared.feature_schema import FeatureSchema, describe_issues
from shared.sdk.timing import PredictionLogger

log = logging.getLogger(__name__)


class Registry(Protocol):
    """What a model server asks the registry; each raises :class:`ModelLoadError` when it cannot answer."""

    def resolve(self, model_name: str, alias: str) -> AliasTarget: ...

    def feature_schema(self, model_name: str) -> FeatureSchema: ...

    def output_type(self, model_name: str, version: int) -> OutputType | None: ...


class ModelLoader(Protocol):
    """Fetch, verify and unpickle one version, or raise :class:`ModelLoadError`."""

    def __call__(
        self,
        model_name: str,
        version: int,
        uri: str,
        sha256: str,
        feature_schema: FeatureSchema | None = None,
        output_type: OutputType | None = None,
    ) -> LoadedModel: ...


@dataclass(frozen=True)
class WatcherStatus:
    connected: bool
    since: datetime  # when the watcher last became connected or disconnected
    last_error: str | None  # the last Kafka error, kept after reconnecting
    skipped_records: int  # model-events records that were not events


class AliasWatcher(Protocol):
    """Calls :meth:`ModelServer.refresh` when the alias may have moved (the model-events watcher)."""

    @property
    def status(self) -> WatcherStatus: ...

    def start(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...


@dataclass(frozen=True)
class Prediction:
    prediction_id: str
    model_version: int
    prediction: bool | int | float | str
    probabilities: dict[str, float] | None
    latency_ms: float


class Background(Protocol):
    """A thread the server runs between :meth:`ModelServer.start` and :meth:`ModelServer.stop` (usage reporter)."""

    def start(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...


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


class ModelServer:
    """Serves ``alias`` (default ``production``) of ``model_name``; call :meth:`refresh` when it may have moved.

    Built by :func:`services.serving.bootstrap.bootstrap`; ``watcher`` (set there unless told not to) follows
    the alias between :meth:`start` and :meth:`stop`, ``closers`` release what bootstrap opened.
    """

    def __init__(
        self,
        model_name: str,
        alias: str = "production",
        *,
        registry: Registry,
        load: ModelLoader,
        sink: PredictionLogger | None = None,
        watcher: AliasWatcher | None = None,
        closers: Sequence[Callable[[], object]] = (),
        meter: UsageMeter | None = None,
        background: Sequence[Background] = (),
    ) -> None:
        self.model_name = model_name
        self.alias = alias
        self.registry = registry
        self.load = load
        self.sink = sink
        self.watcher = watcher
        self.closers = list(closers)
        self.meter = meter
        self.background = list(background)
        self._current: LoadedModel | None = None
        self._refresh_lock = threading.Lock()
        self._swaps = 0
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None

    def start(self) -> None:
        """Follow the alias (when a watcher is set), then load the version it points at now."""
        if self.watcher is not None:
            self.watcher.start()
        for task in self.background:
            task.start()
        self.refresh()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        for task in self.background:
            task.stop()

    def close(self) -> None:
        """Release what bootstrap opened for this server (the prediction sink, the registry client)."""
        for close in self.closers:
            close()

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
                loaded = self.load(
                    self.model_name,
                    target.version,
                    target.artifact_uri,
                    target.artifact_sha256,
                    schema,
                    self.registry.output_type(self.model_name, target.version) or answered_type(current),
                )
            except ModelLoadError as exc:
                repeated = str(exc) == self._last_error
                self._last_error, self._last_error_at = str(exc), datetime.now(UTC)
                if repeated:  # the alias check retries every poll: say it once, not every 30 s
                    log.debug("still failing to load %s@%s: %s", self.model_name, self.alias, exc)
                elif self._current is None:
                    log.warning(
                        "%s@%s has nothing to serve yet (%s); /predict answers 503 until a version is "
                        "registered and the alias points at it",
                        self.model_name,
                        self.alias,
                        exc,
                    )
                else:
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
                classes = [str(plain(c)) for c in model.estimator.classes_]
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
        if self.meter is not None:
            self.meter.served(len(served))
        return served
