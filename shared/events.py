"""The event contract: one pydantic model per event that crosses a Kafka topic.

These models are the only contract between services. Every event carries an
``event_id`` (UUID, the dedup key of every sink), a ``schema_version``, a UTC
``occurred_at`` timestamp and the ``model_name`` that keys it on Kafka, so one
model's events stay ordered. Events are named in the past tense; commands in
the imperative.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


def utc_now() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: datetime) -> datetime:
    """Naive timestamps are taken as UTC; aware ones are converted, so every stored time is UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+05:00 is before the first UTC instant
        raise ValueError(f"{value.isoformat()} cannot be expressed in UTC") from exc


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
ModelName = Annotated[str, Field(min_length=1, max_length=200)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
FeatureValue = bool | int | FiniteFloat | str | None
"""A feature is a number, a string (category or text), a boolean or missing (None); NaN/inf are refused."""


class Event(BaseModel):
    """Fields every event has; subclasses add their own and set ``event_type``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: str
    event_id: UUID = Field(default_factory=uuid4, description="Unique id; sinks deduplicate on it.")
    schema_version: int = Field(SCHEMA_VERSION, ge=1, description="Version of this event's schema.")
    occurred_at: UtcDatetime = Field(default_factory=utc_now, description="When it happened, UTC.")
    model_name: ModelName = Field(description="The model this event is about; the Kafka message key.")

    topic: ClassVar[str] = ""

    @property
    def key(self) -> bytes:
        """Kafka key: the model name, so a model's events stay in one partition, in order."""
        return self.model_name.encode()


# ---------------------------------------------------------------- production traffic


class PredictionLogged(Event):
    """A model served one prediction in production."""

    topic: ClassVar[str] = "predictions"
    event_type: Literal["prediction_logged"] = "prediction_logged"
    model_version: str = Field(min_length=1, max_length=64, description="Version that made the prediction.")
    prediction_id: str = Field(
        min_length=1, max_length=200, description="Id the ground-truth label refers to."
    )
    features: dict[str, FeatureValue] = Field(description="Model inputs by feature name; None is missing.")
    prediction: bool | int | FiniteFloat | str = Field(description="The output: a class or a number.")
    probabilities: dict[str, FiniteFloat] | None = Field(
        None, description="Class probabilities, for classifiers."
    )
    latency_ms: FiniteFloat | None = Field(None, ge=0, description="Time the model call took.")


class LabelLogged(Event):
    """The ground truth for an earlier prediction became known."""

    topic: ClassVar[str] = "labels"
    event_type: Literal["label_logged"] = "label_logged"
    prediction_id: str = Field(min_length=1, max_length=200, description="The prediction this label is for.")
    label: bool | int | FiniteFloat | str = Field(description="The true class or value.")


class DataQualityCounted(Event):
    """Counts of data problems seen for one model's features over an interval (ingest → monitor)."""

    topic: ClassVar[str] = "data-quality"
    event_type: Literal["data_quality_counted"] = "data_quality_counted"
    model_version: str | None = None
    interval_start: UtcDatetime
    interval_end: UtcDatetime
    events: int = Field(ge=0, description="Events looked at in the interval.")
    counts: dict[str, dict[str, int]] = Field(
        description="feature -> {missing, type_error, out_of_range, unseen_category} counts."
    )


class EventDeadLettered(Event):
    """Input that failed validation, kept with its original bytes and the reason; never dropped."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    topic: ClassVar[str] = "dead-letter"
    event_type: Literal["event_dead_lettered"] = "event_dead_lettered"
    model_name: str = Field("unknown", description="The model it claimed, or 'unknown' when unparseable.")
    source: str = Field(description="Where it came from, e.g. 'topic:predictions' or 'http:ingest'.")
    reason: str = Field(description="Short machine-readable reason, e.g. 'invalid_json', 'unknown_model'.")
    detail: str = Field("", description="Human-readable explanation naming the offending field.")
    original: bytes = Field(description="The original bytes, exactly as received (base64 in JSON).")
    source_partition: int | None = None
    source_offset: int | None = None


# ---------------------------------------------------------------- monitoring


class DriftKind(StrEnum):
    FEATURE = "feature"
    OUTPUT = "output"
    PERFORMANCE = "performance"
    ESTIMATED_PERFORMANCE = "estimated_performance"
    """Performance estimated without labels (CBPE/DLE) dropped; labels may not exist yet."""


class DriftEvidence(BaseModel):
    """One test's result on one column: enough to explain the decision."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    feature: str = Field(description="Feature name, '__prediction__' for output, or the metric name.")
    test: str = Field(description="Test that decided, e.g. 'ks', 'psi', 'chi2', 'page_hinkley'.")
    statistic: float
    p_value: float | None = None
    threshold: float
    effect_size: float | None = None
    reference_size: int = Field(ge=0)
    current_size: int = Field(ge=0)
    drifted: bool


class RankedFeature(BaseModel):
    """A drifted feature weighed by how much the model relies on it: ``score`` = importance x effect."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    feature: str
    importance: float | None = Field(
        None,
        ge=0,
        le=1,
        description="The feature's share of the model's permutation importance (None: unknown).",
    )
    effect: float = Field(ge=0, description="The drift's effect size over its threshold (above 1: drifted).")
    score: float = Field(
        ge=0, description="importance x effect; the event lists features by it, largest first."
    )
    ignored: bool = Field(
        False, description="Below the model's min_importance_share: does not count as feature drift."
    )


class DriftDetected(Event):
    """The monitor decided that a model's inputs, outputs or performance changed."""

    topic: ClassVar[str] = "drift-events"
    event_type: Literal["drift_detected"] = "drift_detected"
    model_version: str
    kinds: list[DriftKind] = Field(min_length=1)
    severity: float = Field(ge=0, description="Share of drifted features, or the size of the metric drop.")
    window_start: UtcDatetime
    window_end: UtcDatetime
    windows_considered: int = Field(ge=1, description="M in 'K of the last M windows'.")
    windows_drifted: int = Field(ge=1, description="K in 'K of the last M windows'.")
    drifted_features: list[str] = Field(default_factory=list)
    evidence: list[DriftEvidence] = Field(default_factory=list)
    ranked_features: list[RankedFeature] = Field(
        default_factory=list,
        description="Drifted features by importance x effect, largest first; empty without importance.",
    )
    importance_share_drifted: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Share of the model's importance held by drifted features (None: unknown).",
    )
    estimated_accuracy_change: float | None = Field(
        None,
        description="What the inputs' drift is estimated to cost, before labels: the alerting window's "
        "estimated accuracy (CBPE) minus the version's validation accuracy; None without an estimator.",
    )


class DriftRecovered(Event):
    """A model that had drifted looks like its reference again."""

    topic: ClassVar[str] = "drift-events"
    event_type: Literal["drift_recovered"] = "drift_recovered"
    model_version: str
    window_start: UtcDatetime
    window_end: UtcDatetime


# ---------------------------------------------------------------- training


class RetrainModel(Event):
    """Command: train a new version of a model (from a drift event, a person or a schedule)."""

    topic: ClassVar[str] = "training-runs"
    event_type: Literal["retrain_model"] = "retrain_model"
    reason: Literal["drift", "manual", "schedule"] = "manual"
    drift_event_id: UUID | None = None
    requested_by: str = "system"


class _TrainingRunEvent(Event):
    topic: ClassVar[str] = "training-runs"
    run_id: UUID
    trigger_event_id: UUID | None = None


class TrainingRunStarted(_TrainingRunEvent):
    event_type: Literal["training_run_started"] = "training_run_started"
    reason: Literal["drift", "manual", "schedule"]


class TrainingRunFinished(_TrainingRunEvent):
    event_type: Literal["training_run_finished"] = "training_run_finished"
    model_version: str
    challenger_score: float
    champion_score: float | None = None
    metric: str
    promoted: bool
    duration_s: float = Field(ge=0)
    gate: str = Field(
        "",
        max_length=2000,
        description="The promotion gate's verdict naming the setting that decided it, e.g. "
        "'not promoted: needs a gain of +0.01 (min_improvement), got +0.006'; empty from older trainers.",
    )


class TrainingRunFailed(_TrainingRunEvent):
    event_type: Literal["training_run_failed"] = "training_run_failed"
    error: str


class TrainingRunRejected(_TrainingRunEvent):
    """The run stopped before training because its data failed validation."""

    event_type: Literal["training_run_rejected"] = "training_run_rejected"
    problems: list[str] = Field(min_length=1)


# ---------------------------------------------------------------- registry


class ModelCreated(Event):
    topic: ClassVar[str] = "model-events"
    event_type: Literal["model_created"] = "model_created"
    created_by: str


class ModelVersionRegistered(Event):
    """A version was registered, with its artifact, metrics and lineage, so SQL can show what the registry shows."""

    topic: ClassVar[str] = "model-events"
    event_type: Literal["model_version_registered"] = "model_version_registered"
    version: int = Field(ge=1)
    artifact_uri: str
    artifact_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_by: str
    artifact_size: int | None = Field(None, ge=0, description="The artifact's size in bytes.")
    metrics: dict[str, FiniteFloat] = Field(
        default_factory=dict, description="The version's metrics as registered (validation accuracy, ...)."
    )
    lineage: dict[str, Any] = Field(
        default_factory=dict,
        description="The version's lineage as the registry holds it (dataset_uri, dataset_sha256, "
        "dataset_query, data_start, data_end, code_version, parent_version, drift_event_id, training_run_id).",
    )


class ModelUpdated(Event):
    """A registered model's description, tags, schema, recipe or drift thresholds changed."""

    topic: ClassVar[str] = "model-events"
    event_type: Literal["model_updated"] = "model_updated"
    changed_fields: list[str] = Field(min_length=1, description="Names of the fields that changed.")
    updated_by: str


class ModelDeleted(Event):
    """A registered model, its versions and aliases were deleted; servers of it should stop."""

    topic: ClassVar[str] = "model-events"
    event_type: Literal["model_deleted"] = "model_deleted"
    deleted_by: str


class ModelVersionDeleted(Event):
    """A version was deleted (it had no alias left); its number is never handed out again."""

    topic: ClassVar[str] = "model-events"
    event_type: Literal["model_version_deleted"] = "model_version_deleted"
    version: int = Field(ge=1)
    deleted_by: str


class VersionStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


class ModelVersionStatusChanged(Event):
    """A version became ready (servable) or failed, or went back to pending."""

    topic: ClassVar[str] = "model-events"
    event_type: Literal["model_version_status_changed"] = "model_version_status_changed"
    version: int = Field(ge=1)
    status: VersionStatus
    previous_status: VersionStatus
    changed_by: str


class AliasAction(StrEnum):
    SET = "set"
    MOVED = "moved"
    DELETED = "deleted"
    ROLLED_BACK = "rolled_back"


class AliasChanged(Event):
    """An alias (production, staging, candidate, ...) now points at another version, or nowhere."""

    topic: ClassVar[str] = "model-events"
    event_type: Literal["alias_changed"] = "alias_changed"
    alias: str
    action: AliasAction
    version: int | None = Field(None, description="Version the alias points at now; None when deleted.")
    previous_version: int | None = None
    changed_by: str


# ---------------------------------------------------------------- operations


class ScaleAdvised(Event):
    """The scaling advisor forecast that a service needs more (or fewer) workers, partitions or disk.

    Not about one model: ``model_name`` is the service the advice is for (``monitor``, ``clickhouse``), so
    one target's advice stays ordered.
    """

    topic: ClassVar[str] = "scale-advice"
    event_type: Literal["scale_advised"] = "scale_advised"
    kind: Literal["scale_up", "scale_down", "partitions", "disk"] = Field(
        description="scale_up/scale_down: run workers_advised workers; partitions: the partition count is the "
        "limit; disk: ClickHouse's disk fills within days_until_full."
    )
    message: str = Field(max_length=2000, description="The advice as a person reads it, with its figures.")
    workers_now: int | None = Field(None, ge=0)
    workers_advised: int | None = Field(None, ge=0)
    partitions: int | None = Field(None, ge=0, description="Partitions of the topics the workers consume.")
    inflow_per_s: FiniteFloat | None = Field(None, ge=0, description="Forecast events/s into the topics.")
    capacity_per_worker: FiniteFloat | None = Field(
        None, ge=0, description="Events/s of one worker at 100% busy."
    )
    lag: FiniteFloat | None = Field(None, ge=0, description="Events not yet processed, by the trend.")
    lag_growth_per_s: FiniteFloat | None = None
    breach_in_s: FiniteFloat | None = Field(
        None, ge=0, description="Seconds until the SLO breaks at the trend."
    )
    days_until_full: FiniteFloat | None = Field(None, ge=0)


EVENT_TYPES: tuple[type[Event], ...] = (
    PredictionLogged,
    LabelLogged,
    DataQualityCounted,
    EventDeadLettered,
    DriftDetected,
    DriftRecovered,
    RetrainModel,
    TrainingRunStarted,
    TrainingRunFinished,
    TrainingRunFailed,
    TrainingRunRejected,
    ModelCreated,
    ModelVersionRegistered,
    ModelUpdated,
    ModelDeleted,
    ModelVersionDeleted,
    ModelVersionStatusChanged,
    AliasChanged,
    ScaleAdvised,
)
EVENTS_BY_TYPE: dict[str, type[Event]] = {cls.model_fields["event_type"].default: cls for cls in EVENT_TYPES}


def event_json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of every event, keyed by ``event_type``, for producers in other languages."""
    return {name: cls.model_json_schema() for name, cls in EVENTS_BY_TYPE.items()}
