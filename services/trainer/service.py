"""The trainer's use cases: one training run start to finish (pull the window, validate, snapshot, train,
gate, register, promote), and the :class:`Trainer` that runs a trigger over its ports.

A run talks to the world only through the ports it is given (:class:`RunPorts`), so tests and the worker
wire the same code to different adapters. Promotion is the very last step: a run that fails anywhere
before it never moves ``production``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol
from uuid import UUID, uuid4

import joblib
import numpy as np
import pandas as pd

from services.trainer.domain.cost import CostMeter, CostRecord
from services.trainer.domain.dataset import (
    META_COLUMNS,
    SPLIT,
    WindowQuery,
    coerce_features,
    read_snapshot,
    select_window,
    snapshot,
    split_holdout,
    to_frame,
    window_query,
)
from services.trainer.domain.debounce import Trigger
from services.trainer.domain.gate import GateDecision, Scorecard, decide
from services.trainer.domain.importance import holdout_importance
from services.trainer.domain.outcome import RunOutcome, cost_row, outcome_event, started_event
from services.trainer.domain.recipe import TrainingRecipe, parse_recipe
from services.trainer.domain.registered import RegisteredModel
from services.trainer.domain.training import fit, fit_version_estimator, infer_output_type, predict, score
from services.trainer.domain.validation import labels_missing, validate_training_data
from shared.answer_type import OUTPUT_TYPE_TAG, OUTPUT_TYPES, OutputType, output_type_of
from shared.artifacts import ArtifactStore
from shared.events import Event, TrainingRunFailed
from shared.feature_schema import FeatureSchema
from shared.mlflow_model import is_mlflow_model, load_estimator, repackage
from shared.profile import build_profile

log = logging.getLogger(__name__)
PRODUCTION = "production"
CANDIDATE = "candidate"


class Registry(Protocol):
    """The registry's HTTP API as a run uses it."""

    def get_model(self, name: str) -> RegisteredModel: ...

    def download_artifact(self, name: str, version: int) -> bytes: ...

    def register_version(
        self, name: str, artifact: bytes, filename: str, metadata: dict[str, Any]
    ) -> int: ...

    def set_alias(self, name: str, alias: str, version: int, reason: str) -> None: ...


@dataclass(frozen=True)
class RunPorts:
    """The adapters a run uses: the registry, the warehouse query and the artifact store."""

    registry: Registry
    fetch_window: Callable[[WindowQuery], pd.DataFrame]
    store: ArtifactStore
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    code_version: str = ""
    """``DRIFTLOOP_CODE_VERSION`` (a commit, set at build); empty: the package's version."""


def code_version(explicit: str = "") -> str:
    """The training code's version: ``explicit`` (``DRIFTLOOP_CODE_VERSION``, a commit) or the package's."""
    if explicit:
        return explicit
    try:
        return f"driftloop=={version('driftloop')}"
    except PackageNotFoundError:
        return "driftloop==unknown"


def run_training(trigger: Trigger, ports: RunPorts, run_id: UUID | None = None) -> RunOutcome:
    """Train, gate and register a new version of ``trigger.model_name``; errors propagate (a failed run)."""
    run_id = run_id or uuid4()
    meter = CostMeter()
    cutoff = ports.now()
    model = ports.registry.get_model(trigger.model_name)
    recipe = parse_recipe(model.training_recipe, model.task_type)
    schema = model.feature_schema
    query = window_query(model.name, recipe.window, cutoff, trigger.window_start)
    rows = ports.fetch_window(query)
    meter.lap("query")
    meter.bytes_read = int(rows.memory_usage(deep=True).sum()) if len(rows) else 0
    frame = select_window(to_frame(rows, schema), recipe.window, trigger.window_start, recipe.random_state)
    meter.rows = len(frame)
    unlabelled = labels_missing(trigger, frame)
    if unlabelled is not None:
        return RunOutcome(run_id, "rejected", cutoff, report=unlabelled, cost=meter.record())
    report = validate_training_data(frame, schema, recipe, label_column=recipe.label_column)
    meter.lap("shape_and_validate")
    if not report.ok:
        return RunOutcome(run_id, "rejected", cutoff, report=report, cost=meter.record())

    features = recipe.feature_names(schema)
    frozen = split_holdout(coerce_features(frame, schema, features), recipe.window.holdout_share)
    snap = snapshot(frozen[[*features, *META_COLUMNS, SPLIT]])
    stored = ports.store.put_bytes(snap.key, snap.data)
    meter.artifact_bytes["dataset"] = stored.size
    data = read_snapshot(snap.data)  # train on exactly what a re-run would read back
    holdout = data[data[SPLIT] == "holdout"]
    meter.lap("snapshot")

    champion_version = model.aliases.get(PRODUCTION)
    champion, champion_note, champion_artifact = _load_champion(ports, model, champion_version)
    answers = answer_type(model.tags, champion, data) if recipe.task == "classification" else None
    challenger = fit(data, recipe, schema, answers)
    meter.lap("train")
    challenger_card = score(challenger, holdout, recipe, schema)
    champion_card: Scorecard | None = None
    if champion is not None:
        champion_card, champion_note = _score_champion(champion, champion_version, holdout, recipe, schema)
    decision = decide(recipe.primary_metric, challenger_card, champion_card, recipe.promotion)
    if champion_note:
        decision.reasons.append(champion_note)
    meter.lap("evaluate")

    train = data[data[SPLIT] == "train"]
    estimator = fit_version_estimator(challenger, holdout, recipe, schema)
    version_metrics = dict(challenger_card.metrics)
    if estimator is not None and estimator.calibration_error is not None:
        version_metrics["calibration_error"] = estimator.calibration_error  # ECE of the raw probabilities
    profile = build_profile(
        _profile_columns(train, schema, features),
        predictions=predict(challenger, train, recipe, schema),
        metrics=version_metrics,
        estimator=estimator,
    )
    meter.lap("profile")
    importance = holdout_importance(challenger, holdout, recipe, schema)  # at most 2,000 rows
    profile = profile.model_copy(update={"feature_importance": importance})
    meter.lap("importance")
    artifact, filename = _serialize(challenger, champion_artifact)
    meter.artifact_bytes["model"] = len(artifact)
    meter.lap("serialize")
    cost = meter.record()
    metadata = _version_metadata(
        trigger,
        run_id,
        recipe,
        query,
        stored.uri,
        stored.sha256,
        data,
        decision,
        champion_version,
        cost,
        code_version(ports.code_version),
    )
    metadata["metrics"] = {**version_metrics, **metadata["metrics"]}
    metadata["reference_profile"] = profile.model_dump(mode="json")
    recorded = output_type_of(challenger)
    if recorded is not None:  # what the model servers cast answers to, whatever the next estimator does
        metadata["tags"][OUTPUT_TYPE_TAG] = recorded
    version = ports.registry.register_version(model.name, artifact, filename, metadata)
    ports.registry.set_alias(model.name, CANDIDATE, version, f"training run {run_id}")
    if decision.promote:
        ports.registry.set_alias(model.name, PRODUCTION, version, "; ".join(decision.reasons)[:2000])
    return RunOutcome(
        run_id, "finished", cutoff, report=report, version=version, decision=decision, cost=cost
    )


def reproduce_predictions(
    snapshot_bytes: bytes,
    recipe: TrainingRecipe,
    schema: FeatureSchema,
    output_type: OutputType | None = None,
) -> list[Any]:
    """Retrain the recipe on a version's snapshot and predict its held-out rows (reproducibility check)."""
    data = read_snapshot(snapshot_bytes)
    model = fit(data, recipe, schema, output_type)
    return predict(model, data[data[SPLIT] == "holdout"], recipe, schema)


def answer_type(tags: dict[str, str], champion: Any, data: pd.DataFrame) -> OutputType | None:
    """The type a retrained classifier must answer with, so an automatic promotion never changes it.

    In order: the type recorded on the model (tag ``output_type``), the type the champion answers with, the
    type the labels arrived as (whole JSON numbers: ``int``). None: text, as labels are stored.
    """
    recorded = tags.get(OUTPUT_TYPE_TAG)
    if recorded in OUTPUT_TYPES:
        return recorded
    return output_type_of(champion) or infer_output_type(data)


def _serialize(challenger: Any, champion_artifact: bytes | None) -> tuple[bytes, str]:
    """The challenger's artifact in its champion's format: an MLflow model zip stays one (so MLflow clients
    load the retrained version too), anything else is a joblib pickle."""
    if champion_artifact is not None and is_mlflow_model(champion_artifact):
        return repackage(champion_artifact, challenger), "model.zip"
    buffer = io.BytesIO()
    joblib.dump(challenger, buffer)
    return buffer.getvalue(), "model.joblib"


def _load_champion(
    ports: RunPorts, model: RegisteredModel, version: int | None
) -> tuple[Any, str, bytes | None]:
    """The production version's estimator and artifact, or None and why (none yet, or an artifact that will
    not load); a joblib pickle or an MLflow model zip (docs/mlflow.md)."""
    if version is None:
        return None, "", None
    try:
        data = ports.registry.download_artifact(model.name, version)
        if is_mlflow_model(data):
            return load_estimator(data), "", data
        return joblib.load(io.BytesIO(data)), "", data
    except Exception as exc:  # an artifact we cannot unpickle is the champion's problem, not the run's
        log.warning("champion %s v%s could not be loaded: %s", model.name, version, exc)
        return None, f"champion v{version} could not be loaded ({type(exc).__name__}: {exc})", None


def _score_champion(
    champion: Any,
    version: int | None,
    holdout: pd.DataFrame,
    recipe: TrainingRecipe,
    schema: FeatureSchema,
) -> tuple[Scorecard | None, str]:
    """The champion's scorecard on the same held-out rows; one that cannot be scored is noted."""
    try:
        return score(champion, holdout, recipe, schema), ""
    except (
        Exception
    ) as exc:  # a champion of another make (not a pipeline on these columns) cannot be compared
        log.warning("champion v%s could not be scored: %s", version, exc)
        return (
            None,
            f"champion v{version} could not be scored on the held-out data ({type(exc).__name__}: {exc})",
        )


def _profile_columns(train: pd.DataFrame, schema: FeatureSchema, features: list[str]) -> dict[str, Any]:
    """Training columns as the monitor reads live ones: categories as strings, everything else (booleans
    included, stored as 1.0/0.0 in ``num_features``) as float arrays, missing as None/NaN. Column at a
    time: a per-value Python conversion of 100,000 rows took longer than building the profile."""
    columns: dict[str, Any] = {}
    for name in features:
        spec = schema.spec(name)
        values = train[name]
        if spec is not None and spec.type in ("categorical", "text"):
            present = values.notna().to_numpy()
            text = np.full(len(values), None, dtype=object)
            text[present] = values[present].astype(str).to_numpy(dtype=object)
            columns[name] = text
        else:
            columns[name] = values.astype(float).to_numpy()
    return columns


def _version_metadata(
    trigger: Trigger,
    run_id: UUID,
    recipe: TrainingRecipe,
    query: WindowQuery,
    dataset_uri: str,
    dataset_sha256: str,
    data: pd.DataFrame,
    decision: GateDecision,
    parent_version: int | None,
    cost: CostRecord,
    code: str,
) -> dict[str, Any]:
    """The registry's VersionCreate body: metrics, params (recipe, gate, cost, dataset), lineage."""
    metrics = dict(_score_metrics(decision))
    occurred = pd.to_datetime(data["occurred_at"], utc=True)
    splits = data[SPLIT].value_counts().to_dict()
    return {
        "description": f"retrained by the trainer ({trigger.reason}); "
        + ("promoted" if decision.promote else "kept as candidate"),
        "metrics": metrics,
        "params": {
            "recipe": recipe.model_dump(mode="json"),
            "estimator": recipe.factory,
            "gate": {
                "promote": decision.promote,
                "metric": decision.metric,
                "challenger_score": decision.challenger_score,
                "champion_score": decision.champion_score,
                "champion_version": parent_version,
                "reasons": decision.reasons,
            },
            "cost": cost.as_dict(),
            "dataset": {
                "rows": len(data),
                "train_rows": int(splits.get("train", 0)),
                "holdout_rows": int(splits.get("holdout", 0)),
                "query_parameters": {k: str(v) for k, v in query.parameters.items()},
            },
        },
        "tags": {"trainer.trigger": trigger.reason, "trainer.promoted": str(decision.promote).lower()},
        "lineage": {
            "dataset_uri": dataset_uri,
            "dataset_sha256": dataset_sha256,
            "dataset_query": query.describe(),
            "data_start": occurred.min().isoformat() if len(occurred) else None,
            "data_end": occurred.max().isoformat() if len(occurred) else None,
            "code_version": code,
            "parent_version": parent_version,
            "drift_event_id": str(trigger.drift_event_id) if trigger.drift_event_id else None,
            "training_run_id": str(run_id),
        },
    }


def _score_metrics(decision: GateDecision) -> dict[str, float]:
    metrics = {decision.metric: decision.challenger_score}
    if decision.champion_score is not None:
        metrics[f"champion_{decision.metric}"] = decision.champion_score
    return metrics


def execute(
    trigger: Trigger,
    ports: RunPorts,
    publish: Callable[[Event], None],
    record: Callable[[list[Any]], None] | None = None,
) -> tuple[Event, RunOutcome | None]:
    """Run ``trigger``, publishing started then finished/rejected/failed; a crash is reported, not raised."""
    run_id = uuid4()
    started_at = ports.now()
    publish(started_event(trigger, run_id))
    outcome: RunOutcome | None = None
    try:
        outcome = run_training(trigger, ports, run_id)
        finished_at = datetime.now(UTC)
        result = outcome_event(trigger, outcome, (finished_at - started_at).total_seconds())
    except Exception as exc:  # any failure ends this run only; the next trigger retries
        log.exception("training run %s of %s failed", run_id, trigger.model_name)
        finished_at = datetime.now(UTC)
        result = TrainingRunFailed(
            model_name=trigger.model_name,
            run_id=run_id,
            trigger_event_id=trigger.event_id,
            error=f"{type(exc).__name__}: {exc}"[:4000],
        )
    publish(result)
    if record is not None:
        try:
            record(cost_row(trigger, run_id, result, outcome, started_at, finished_at))
        except Exception:  # the cost row is a report; losing it must not fail the run
            log.exception("could not record training run %s in ClickHouse", run_id)
    return result, outcome


class RegistryService(Registry, Protocol):
    """The registry as the trainer's loop uses it: a run's calls, a health check, and closing."""

    def check_health(self) -> None: ...

    def close(self) -> None: ...


class Warehouse(Protocol):
    """ClickHouse as the trainer uses it: the training window, the ``training_runs`` table, a ping."""

    def ensure_schema(self) -> None: ...

    def fetch_window(self, query: WindowQuery) -> pd.DataFrame: ...

    def ping(self) -> None: ...

    def record_run(self, row: list[Any]) -> None: ...

    def close(self) -> None: ...


@dataclass
class Trainer:
    """The trainer over its ports, built once by ``bootstrap``: probe what a run needs, run a trigger."""

    registry: RegistryService
    warehouse: Warehouse
    store: ArtifactStore
    code_version: str = ""

    def open(self) -> None:
        """Connect to the warehouse and create ``training_runs`` if it is missing (raises while away)."""
        self.warehouse.ensure_schema()

    def probes(self) -> dict[str, Callable[[], None]]:
        """Each dependency a run needs, by its ``/health`` name, with a check that raises while it is away."""
        return {
            "clickhouse": self.warehouse.ping,
            "registry": self.registry.check_health,
            "artifacts": self._probe_store,
        }

    def _probe_store(self) -> None:
        root = str(getattr(self.store, "root", "")).rstrip("/")
        self.store.exists(f"{root}/driftloop-health-probe")

    def run(
        self, trigger: Trigger, cutoff: datetime, publish: Callable[[Event], None]
    ) -> tuple[Event, RunOutcome | None]:
        """Run ``trigger`` on data up to ``cutoff``, publishing its events and recording its cost row."""
        ports = RunPorts(
            registry=self.registry,
            fetch_window=self.warehouse.fetch_window,
            store=self.store,
            now=lambda: cutoff,
            code_version=self.code_version,
        )
        return execute(trigger, ports, publish, self.warehouse.record_run)

    def close(self) -> None:
        self.warehouse.close()
        self.registry.close()
