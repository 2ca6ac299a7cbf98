"""The registry's HTTP request and response bodies (the OpenAPI schema is generated from these)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, field_validator
from pydantic.json_schema import SkipJsonSchema

from shared.drift_thresholds import DriftThresholds
from shared.events import AliasAction, FiniteFloat, UtcDatetime, VersionStatus
from shared.feature_schema import FeatureSchema
from shared.profile import ReferenceProfile

TaskType = Literal["binary_classification", "multiclass_classification", "regression", "other"]
Tags = dict[str, str]
T = TypeVar("T")

MAX_ID = 2**63 - 1
"""Largest version number or id a database column holds (signed 64-bit); larger ones are refused (422)."""
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
MAX_JSON_DEPTH = 32


def _plain_json(value: Any, depth: int = 0) -> Any:
    """Refuse NaN/inf (not JSON) and nesting deeper than ``MAX_JSON_DEPTH`` in free-form JSON fields."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and infinite numbers are not JSON; send a finite number or null")
    if isinstance(value, dict):
        for item in value.values():
            _plain_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _plain_json(item, depth + 1)
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_plain_json)]
Metrics = dict[str, FiniteFloat]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable kind: not_found, conflict, forbidden, invalid, ...")
    message: str = Field(description="What went wrong and what to do next.")
    field: str | None = Field(None, description="The offending field or parameter, when there is one.")


class ErrorBody(BaseModel):
    error: ErrorDetail


class ModelCreate(_Body):
    name: str = Field(min_length=1, max_length=200, description="Unique name; also the Kafka key.")
    description: str = ""
    task_type: TaskType = "binary_classification"
    tags: Tags = Field(default_factory=dict)
    feature_schema: FeatureSchema = Field(default_factory=FeatureSchema)
    training_recipe: JsonObject = Field(
        default_factory=dict, description="What the trainer runs to retrain this model (its own format)."
    )
    drift_thresholds: DriftThresholds | None = Field(None, description="Overrides of the default thresholds.")


def _not_null(value: T) -> T:
    if value is None:
        raise ValueError("may not be null; leave the field out to keep its value")
    return value


# In the update bodies a field left out keeps its value; null is refused (422) for a field that cannot be
# null. The schema shows the field's own type (SkipJsonSchema), the validator runs only on a value sent.
class ModelUpdate(_Body):
    """Fields to change; the ones left out keep their value. Only ``drift_thresholds`` may be null."""

    description: str | SkipJsonSchema[None] = None
    task_type: TaskType | SkipJsonSchema[None] = None
    tags: Tags | SkipJsonSchema[None] = None
    feature_schema: FeatureSchema | SkipJsonSchema[None] = None
    training_recipe: JsonObject | SkipJsonSchema[None] = None
    drift_thresholds: DriftThresholds | None = Field(None, description="null: back to the defaults.")

    _present = field_validator(
        "description", "task_type", "tags", "feature_schema", "training_recipe", mode="before"
    )(_not_null)


class ModelOut(BaseModel):
    name: str
    description: str
    task_type: str
    tags: Tags
    feature_schema: FeatureSchema
    training_recipe: dict[str, Any]
    drift_thresholds: DriftThresholds | None
    latest_version: int = Field(description="Highest version number handed out (0: none yet).")
    aliases: dict[str, int] = Field(description="Alias → version it points at now.")
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str


class Lineage(_Body):
    """Where a version came from, so any prediction can be traced back to data, code and trigger."""

    dataset_uri: str | None = Field(None, description="Training dataset snapshot.")
    dataset_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    dataset_query: str | None = Field(None, description="The query the training window came from.")
    data_start: UtcDatetime | None = None
    data_end: UtcDatetime | None = None
    code_version: str | None = Field(None, description="Git commit or package version of the training code.")
    parent_version: Id | None = Field(None, description="The version this one was retrained from.")
    drift_event_id: UUID | None = Field(None, description="The DriftDetected event that triggered training.")
    training_run_id: UUID | None = None


class VersionCreate(_Body):
    """A new version; the artifact is referenced by URI here, or uploaded in the same multipart request."""

    artifact_uri: str | None = Field(None, description="Where the artifact already is (file://, s3://).")
    artifact_sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="Expected sha256; the registry checks it."
    )
    description: str = ""
    status: VersionStatus = VersionStatus.READY
    metrics: Metrics = Field(default_factory=dict)
    params: JsonObject = Field(default_factory=dict)
    tags: Tags = Field(default_factory=dict)
    lineage: Lineage = Field(default_factory=Lineage)
    reference_profile: ReferenceProfile | None = None


class VersionUpdate(_Body):
    """Fields to change; the ones left out keep their value; none may be null."""

    description: str | SkipJsonSchema[None] = None
    status: VersionStatus | SkipJsonSchema[None] = None
    tags: Tags | SkipJsonSchema[None] = None
    metrics: Metrics | SkipJsonSchema[None] = None

    _present = field_validator("description", "status", "tags", "metrics", mode="before")(_not_null)


class VersionOut(BaseModel):
    model_name: str
    version: int
    status: VersionStatus
    description: str
    artifact_uri: str
    artifact_sha256: str
    artifact_size: int
    metrics: dict[str, float]
    params: dict[str, Any]
    tags: Tags
    lineage: Lineage
    has_reference_profile: bool
    aliases: list[str]
    created_at: datetime
    created_by: str
    updated_at: datetime


class FeatureImportanceOut(BaseModel):
    """How much a version relies on each feature, most important first (from its reference profile)."""

    model_name: str
    version: int
    importance: dict[str, float] = Field(
        description="Permutation importance on held-out rows: the worsening of accuracy (RMSE for regression) "
        "when the feature is shuffled. Empty: not measured (registered without data and target)."
    )
    shares: dict[str, float] = Field(
        description="Each feature's share of the total (negative importance counts as 0); what the monitor's "
        "ranking and min_importance_share use."
    )


class AliasSet(_Body):
    version: Id
    reason: str = Field("", max_length=2000, description="Why; kept in the alias history.")


class RollbackRequest(_Body):
    reason: str = Field("", max_length=2000)


class AliasOut(BaseModel):
    model_name: str
    alias: str
    version: int
    updated_at: datetime
    updated_by: str


class AliasHistoryEntry(BaseModel):
    alias: str
    action: AliasAction
    version: int | None
    previous_version: int | None
    changed_at: datetime
    changed_by: str
    reason: str


class AliasAt(BaseModel):
    model_name: str
    alias: str
    at: datetime
    version: int | None = Field(description="Version the alias pointed at then; null if none.")


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    model_name: str | None
    target: str
    before: Any
    after: Any


class WebhookCreate(_Body):
    url: HttpUrl
    secret: str | None = Field(
        None, min_length=16, max_length=200, description="HMAC key; generated (and shown once) if omitted."
    )
    event_types: list[str] | None = Field(None, description="Event types to send; null sends every one.")


class WebhookOut(BaseModel):
    id: int
    model_name: str
    url: str
    event_types: list[str] | None
    created_at: datetime
    created_by: str
    secret: str | None = Field(None, description="Only in the response that created the webhook.")


class WebhookDeliveryOut(BaseModel):
    id: int
    webhook_id: int
    event_id: str
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime
    last_error: str
    delivered_at: datetime | None


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_page_token: str | None = Field(None, description="Pass as page_token for the next page.")
