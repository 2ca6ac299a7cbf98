"""The stream validator's decisions, without a broker: every kind of bad input is dead-lettered with its bytes."""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest

from services.ingest.bootstrap import bootstrap
from services.ingest.domain.routing import RawMessage
from services.ingest.entrypoints.stream import StreamValidator
from shared.events import EventDeadLettered
from shared.settings import Settings
from shared.topics import topic_names
from tests.unit.ingest_fakes import MemoryWriter, schema_source

TOPICS = topic_names("")
GOOD = {
    "model_name": "churn",
    "model_version": "1",
    "prediction_id": "p",
    "features": {"age": 3},
    "prediction": 1,
}


def _validate(
    *payloads: bytes | None,
) -> tuple[list[dict[str, object]], list[EventDeadLettered], StreamValidator]:
    validator = StreamValidator(bootstrap(Settings(), schemas=schema_source(), writer=MemoryWriter()))
    messages = [RawMessage(2, 100 + i, p) for i, p in enumerate(payloads)]
    records = asyncio.run(validator.validate(TOPICS.predictions_raw, messages))
    valid = [msgspec.json.decode(v) for t, _, v in records if t == TOPICS.predictions]
    letters = [EventDeadLettered.model_validate_json(v) for t, _, v in records if t == TOPICS.dead_letter]
    return valid, letters, validator


@pytest.mark.parametrize(
    ("payload", "reason", "model"),
    [
        (b"\x00\x01 not json", "invalid_json", "unknown"),
        (json.dumps({**GOOD, "features": "age=3"}).encode(), "schema_error", "churn"),
        (json.dumps({**GOOD, "features": {"age": "three"}}).encode(), "feature_type_error", "churn"),
        (json.dumps({**GOOD, "features": {"age": float("inf")}}).encode(), "non_finite_number", "churn"),
        (json.dumps({**GOOD, "model_name": "ghost"}).encode(), "unknown_model", "ghost"),
        (None, "empty_message", "unknown"),
    ],
)
def test_bad_input_is_dead_lettered_with_original_bytes(
    payload: bytes | None, reason: str, model: str
) -> None:
    good = json.dumps(GOOD).encode()
    valid, [letter], validator = _validate(good, payload)
    assert len(valid) == 1
    assert (letter.reason, letter.model_name) == (reason, model)
    assert letter.original == (payload or b"")
    assert (letter.source, letter.source_partition, letter.source_offset) == (
        f"topic:{TOPICS.predictions_raw}",
        2,
        101,
    )
    counted = validator.service.metrics.dead_lettered.labels(model, reason)._value.get()
    assert counted == 1


def test_valid_events_are_normalised_with_an_event_id() -> None:
    [event], letters, _ = _validate(json.dumps(GOOD).encode())
    assert letters == [] and event["event_id"] and event["event_type"] == "prediction_logged"


def test_an_event_too_large_for_kafka_is_dead_lettered_truncated_not_a_crash() -> None:
    huge = json.dumps({**GOOD, "features": {"age": 3, "blob": "x" * 900_000}}).encode()
    [], [letter], _ = _validate(huge)
    assert letter.reason == "event_too_large"
    assert huge.startswith(letter.original) and len(letter.original) < len(huge)
    assert "truncated" in letter.detail


def test_a_dead_letter_for_unknown_features_names_each_of_them_once() -> None:
    payload = json.dumps({**GOOD, "features": {"age": 3, "zip": "1", "city": "x", "tier": 2}}).encode()
    [], [letter], _ = _validate(payload)
    assert letter.reason == "unknown_feature"
    assert letter.detail == "features not in the model's schema: zip, city, tier"


def test_a_dead_letter_for_several_problems_says_each_once() -> None:
    payload = json.dumps({**GOOD, "features": {"age": "three", "zip": "1"}}).encode()
    [], [letter], _ = _validate(payload)
    assert letter.reason == "feature_type_error"
    assert letter.detail == "age: expected a number, got str; feature not in the model's schema: zip"
