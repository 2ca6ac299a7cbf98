"""Contract checks run on every event type: round-trip, keys, UTC timestamps, JSON Schema export."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest
from pydantic import ValidationError

from shared import codec
from shared.events import (
    EVENT_TYPES,
    EVENTS_BY_TYPE,
    AliasAction,
    AliasChanged,
    DataQualityCounted,
    DriftDetected,
    DriftEvidence,
    DriftKind,
    DriftRecovered,
    Event,
    EventDeadLettered,
    LabelLogged,
    ModelCreated,
    ModelDeleted,
    ModelUpdated,
    ModelVersionDeleted,
    ModelVersionRegistered,
    ModelVersionStatusChanged,
    PredictionLogged,
    RetrainModel,
    ScaleAdvised,
    TrainingRunFailed,
    TrainingRunFinished,
    TrainingRunRejected,
    TrainingRunStarted,
    VersionStatus,
    event_json_schemas,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def sample(cls: type[Event]) -> Event:
    """One valid instance of every event type."""
    run = uuid4()
    samples: dict[type[Event], Event] = {
        PredictionLogged: PredictionLogged(
            model_name="churn",
            model_version="3",
            prediction_id="p-1",
            features={"age": 41, "income": 5200.5, "plan": "pro", "active": True, "tenure": None},
            prediction="1",
            probabilities={"0": 0.3, "1": 0.7},
            latency_ms=1.25,
        ),
        LabelLogged: LabelLogged(model_name="churn", prediction_id="p-1", label="1"),
        DataQualityCounted: DataQualityCounted(
            model_name="churn",
            interval_start=T0,
            interval_end=T0 + timedelta(minutes=1),
            events=100,
            counts={"age": {"missing": 3, "type_error": 1, "out_of_range": 0, "unseen_category": 0}},
        ),
        EventDeadLettered: EventDeadLettered(
            source="topic:predictions", reason="invalid_json", detail="line 1", original=b"\x00{not json"
        ),
        DriftDetected: DriftDetected(
            model_name="churn",
            model_version="3",
            kinds=[DriftKind.FEATURE],
            severity=0.4,
            window_start=T0,
            window_end=T0 + timedelta(minutes=1),
            windows_considered=3,
            windows_drifted=2,
            drifted_features=["age"],
            evidence=[
                DriftEvidence(
                    feature="age",
                    test="ks",
                    statistic=0.31,
                    p_value=1e-9,
                    threshold=0.1,
                    effect_size=0.31,
                    reference_size=5000,
                    current_size=1000,
                    drifted=True,
                )
            ],
        ),
        DriftRecovered: DriftRecovered(
            model_name="churn", model_version="3", window_start=T0, window_end=T0 + timedelta(minutes=1)
        ),
        RetrainModel: RetrainModel(model_name="churn", reason="drift", drift_event_id=uuid4()),
        TrainingRunStarted: TrainingRunStarted(model_name="churn", run_id=run, reason="drift"),
        TrainingRunFinished: TrainingRunFinished(
            model_name="churn",
            run_id=run,
            model_version="4",
            challenger_score=0.91,
            champion_score=0.84,
            metric="accuracy",
            promoted=True,
            duration_s=12.5,
        ),
        TrainingRunFailed: TrainingRunFailed(model_name="churn", run_id=run, error="boom"),
        TrainingRunRejected: TrainingRunRejected(
            model_name="churn", run_id=run, problems=["feature 'age' holds text in 12 rows"]
        ),
        ModelCreated: ModelCreated(model_name="churn", created_by="alice"),
        ModelVersionRegistered: ModelVersionRegistered(
            model_name="churn",
            version=4,
            artifact_uri="file:///a/b",
            artifact_sha256="0" * 64,
            created_by="bob",
            artifact_size=2048,
            metrics={"accuracy": 0.9},
            lineage={"parent_version": 3, "dataset_sha256": "1" * 64, "data_start": "2026-01-01T00:00:00Z"},
        ),
        ModelUpdated: ModelUpdated(model_name="churn", changed_fields=["tags"], updated_by="alice"),
        ModelDeleted: ModelDeleted(model_name="churn", deleted_by="admin"),
        ModelVersionDeleted: ModelVersionDeleted(model_name="churn", version=2, deleted_by="admin"),
        ModelVersionStatusChanged: ModelVersionStatusChanged(
            model_name="churn",
            version=4,
            status=VersionStatus.READY,
            previous_status=VersionStatus.PENDING,
            changed_by="trainer",
        ),
        AliasChanged: AliasChanged(
            model_name="churn",
            alias="production",
            action=AliasAction.MOVED,
            version=4,
            previous_version=3,
            changed_by="trainer",
        ),
        ScaleAdvised: ScaleAdvised(
            model_name="monitor",
            kind="scale_up",
            message="monitor: inflow 84k/s vs capacity 2 x 61k/s: run 3 workers (partitions allow 6)",
            workers_now=2,
            workers_advised=3,
            partitions=6,
            inflow_per_s=84_000.0,
            capacity_per_worker=61_000.0,
            lag=1_200_000.0,
            lag_growth_per_s=23_000.0,
            breach_in_s=52.0,
        ),
    }
    return samples[cls]


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.__name__)
def test_round_trip_through_bytes_gives_an_equal_event(cls: type[Event]) -> None:
    event = sample(cls)
    data = codec.encode(event)
    assert codec.decode(data, cls) == event
    assert codec.decode_any(data) == event


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.__name__)
def test_every_event_has_id_version_utc_time_and_model_key(cls: type[Event]) -> None:
    event = sample(cls)
    assert event.schema_version >= 1
    assert event.occurred_at.tzinfo is not None and event.occurred_at.utcoffset() == timedelta(0)
    assert event.key == event.model_name.encode()
    assert cls.topic, f"{cls.__name__} names no topic"
    other = sample(cls)
    assert other.event_id != event.event_id


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.__name__)
def test_json_schema_export_describes_every_field(cls: type[Event]) -> None:
    schema = event_json_schemas()[cls.model_fields["event_type"].default]
    assert set(schema["properties"]) == set(cls.model_fields)
    assert "model_name" in schema["required"] or cls is EventDeadLettered
    json.dumps(schema)  # must be plain JSON


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.__name__)
def test_unknown_fields_are_refused_naming_the_field(cls: type[Event]) -> None:
    payload = json.loads(codec.encode(sample(cls)))
    payload["surprise"] = 1
    with pytest.raises(ValidationError, match="surprise"):
        codec.decode(json.dumps(payload), cls)


def test_event_types_are_unique_and_past_tense_or_imperative() -> None:
    assert len(EVENTS_BY_TYPE) == len(EVENT_TYPES)


def test_timestamps_are_normalised_to_utc() -> None:
    naive = LabelLogged(model_name="m", prediction_id="p", label=1, occurred_at=datetime(2026, 1, 1, 12))
    assert naive.occurred_at == datetime(2026, 1, 1, 12, tzinfo=UTC)
    plus2 = timezone(timedelta(hours=2))
    aware = LabelLogged(
        model_name="m", prediction_id="p", label=1, occurred_at=datetime(2026, 1, 1, 14, tzinfo=plus2)
    )
    assert aware.occurred_at == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert aware.occurred_at.tzinfo == UTC


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"features": {"age": float("nan")}}, "features.age"),
        ({"features": {"age": float("inf")}}, "features.age"),
        ({"features": {"age": [1, 2]}}, "features.age"),
        ({"prediction_id": ""}, "prediction_id"),
        ({"model_name": ""}, "model_name"),
        ({"latency_ms": -1.0}, "latency_ms"),
        ({"probabilities": {"1": "high"}}, "probabilities.1"),
    ],
)
def test_invalid_predictions_name_the_offending_field(change: dict[str, object], field: str) -> None:
    base = sample(PredictionLogged).model_dump()
    with pytest.raises(ValidationError) as info:
        PredictionLogged(**(base | change))
    locations = {".".join(str(p) for p in e["loc"]) for e in info.value.errors()}
    assert any(loc.startswith(field) for loc in locations), locations


def test_dead_letter_keeps_the_original_bytes_exactly() -> None:
    raw = bytes(range(256))
    event = EventDeadLettered(source="topic:labels", reason="invalid_json", original=raw)
    assert codec.decode(codec.encode(event), EventDeadLettered).original == raw
